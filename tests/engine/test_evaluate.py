"""The one evaluation loop: its scores against torchmetrics, per-image confusion matrices for the
bootstrap, and any segmenter (a checkpoint's stored metrics reproduced exactly by seglab evaluate:
tests/deployment/test_measure.py)."""

import dataclasses

import pytest
import torch
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex

from seglab.data.dataset import pad_collate
from seglab.data.synthetic import INFO, SyntheticScenes
from seglab.engine.evaluate import EvalOptions, evaluate
from seglab.engine.inference import predict_probabilities
from seglab.engine.metrics import confusion_matrix
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


@pytest.mark.parametrize(
    "options",
    [
        EvalOptions(flip=True),
        EvalOptions(scales=(0.5, 1.0)),
        EvalOptions(window=(24, 32)),
    ],
    ids=["flip", "scales", "window"],
)
def test_the_options_test_time_augmentation_is_what_is_scored(items, options):
    """Each test-time option changes the scores, and exactly as predict_probabilities says."""
    torch.manual_seed(0)  # a random 5x5 filter: neither mirror- nor scale-invariant
    segmenter = TorchSegmenter(torch.nn.Conv2d(3, INFO.num_classes, 5, padding=2), INFO)
    plain = evaluate(segmenter, batches(items, 1), progress=False)
    augmented = evaluate(segmenter, batches(items, 1), options, progress=False)
    expected = torch.zeros_like(plain.confusion)
    for image, mask in items:
        probabilities = predict_probabilities(
            segmenter,
            image[None],
            flip=options.flip,
            scales=options.scales,
            window=options.window,
        )
        predicted = probabilities.argmax(1)
        expected += confusion_matrix(predicted, mask[None], INFO.num_classes, INFO.ignore_index)
    assert torch.equal(augmented.confusion, expected)
    assert not torch.equal(augmented.confusion, plain.confusion)
