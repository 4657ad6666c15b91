"""The one evaluation loop: its scores against torchmetrics, per-image confusion matrices for the
bootstrap, any segmenter, and a checkpoint's stored metrics reproduced exactly."""

import dataclasses

import pytest
import torch
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex

from seglab.data.dataset import pad_collate
from seglab.data.synthetic import INFO, SyntheticScenes
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.evaluate import evaluate, evaluate_checkpoint, format_metrics
from seglab.engine.segmenter import Segmenter, TorchSegmenter
from seglab.models import build_model


def batches(items, size):
    """(images, masks) batches as the evaluation loader makes them (padded to the largest)."""
    collate = pad_collate(INFO.ignore_index)
    return [collate(items[i : i + size]) for i in range(0, len(items), size)]


@pytest.fixture(scope="module")
def items():
    """Six scenes of two sizes, some pixels ignored: padding and ignored pixels both occur."""
    scenes = [SyntheticScenes("val", size=(48, 64))[i] for i in range(3)]
    scenes += [SyntheticScenes("val", size=(40, 56))[i] for i in range(3)]
    for _, mask in scenes[::2]:
        mask[:4] = INFO.ignore_index
    return scenes


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return TorchSegmenter(build_model("mobilenet_v2", INFO.num_classes, encoder_weights=None), INFO)


def test_scores_agree_with_torchmetrics_whatever_the_batching(items, segmenter):
    with torch.no_grad():
        preds = [segmenter(image[None]).argmax(1)[0] for image, _ in items]
    jaccard = MulticlassJaccardIndex(INFO.num_classes, average=None, ignore_index=255)
    for pred, (_, mask) in zip(preds, items):
        jaccard.update(pred[None], mask[None])
    expected = jaccard.compute()
    for size in (1, 4):  # batches of 4 mix both sizes: the padding must never be scored
        metrics = evaluate(segmenter, batches(items, size), progress=False).metrics
        for k, name in enumerate(INFO.classes):
            iou = metrics["per_class"][name]["iou"]
            if iou is not None:
                assert iou == pytest.approx(float(expected[k]), abs=1e-6), name


def test_per_image_confusions_are_each_images_own_and_sum_to_the_total(items, segmenter):
    result = evaluate(segmenter, batches(items, 4), progress=False, per_image=True)
    assert result.confusions.shape == (len(items), INFO.num_classes, INFO.num_classes)
    assert (result.confusions.sum(0) == result.confusion.numpy()).all()
    oracle = MulticlassConfusionMatrix(INFO.num_classes, ignore_index=255)
    for k, (image, mask) in enumerate(items):
        with torch.no_grad():
            pred = segmenter(image[None]).argmax(1)
        assert (oracle(pred, mask[None]).numpy() == result.confusions[k]).all(), k
        scored = result.predictions[k][: mask.shape[0], : mask.shape[1]]
        ignored = mask == INFO.ignore_index
        assert (scored[ignored.numpy()] == 255).all()
        assert (scored[~ignored.numpy()] == pred[0][~ignored].numpy()).all()
    assert evaluate(segmenter, batches(items, 4), progress=False).confusions is None


@dataclasses.dataclass
class Constant:
    """A segmenter that is no torch module: it says every pixel is ``label``."""

    label: int
    name: str = "constant"
    kind: str = "test"
    info = INFO
    device = torch.device("cpu")

    def __call__(self, images):
        logits = torch.zeros(images.shape[0], INFO.num_classes, *images.shape[-2:])
        logits[:, self.label] = 1
        return logits


def test_any_segmenter_is_evaluated(items):
    sky = Constant(0)
    assert isinstance(sky, Segmenter)
    metrics = evaluate(sky, batches(items, 2), progress=False).metrics
    truth = torch.cat([m[m != 255] for _, m in items])
    assert metrics["pixel_accuracy"] == pytest.approx(float((truth == 0).float().mean()))
    assert metrics["per_class"]["sky"]["accuracy"] == 1.0


def test_evaluate_checkpoint_reproduces_the_stored_metrics_exactly(tiny_runs):
    for encoder in ("vgg19", "mobilenet_v2"):
        path = tiny_runs[encoder] / "best.pt"
        stored = Checkpoint.load(path)
        metrics = evaluate_checkpoint(path, workers=0, progress=False)
        assert metrics["evaluation"]["batch_size"] == stored.config.batch_size
        assert metrics["miou"] == stored.metrics["miou"]
        assert metrics["per_class"] == stored.metrics["per_class"]
    explicit = evaluate_checkpoint(path, batch_size=3, workers=0, progress=False)
    assert explicit["evaluation"]["batch_size"] == 3
    assert explicit["pixels"] == metrics["pixels"]


def test_printed_scores_are_percent_with_two_decimals(items):
    metrics = evaluate(Constant(1), batches(items, 2), progress=False).metrics
    text = format_metrics(metrics)
    assert f"mIoU {100 * metrics['miou']:.2f}  pixel accuracy" in text
    sky = next(line for line in text.splitlines() if line.startswith("sky"))
    assert f"{100 * metrics['per_class']['sky']['iou']:.2f}" in sky
    assert sky.endswith("ground (100.00%)")  # where a class's pixels go: all of sky to ground
    ground = next(line for line in text.splitlines() if line.startswith("ground"))
    assert ground.endswith(str(metrics["per_class"]["ground"]["pixels"]))  # none misread
