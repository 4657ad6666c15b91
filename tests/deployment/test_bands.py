"""Images beyond 8-bit RGB from training to deployment: a 5-band 16-bit TIFF dataset and a 1-band
16-bit PNG one, each trained briefly, then evaluated, predicted on and exported to ONNX. The number
of bands and the training split's per-band statistics travel in the checkpoint and the exported
model, so every form reads and normalises the images alike."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.data.io import read_image
from seglab.deployment.artifacts import load_segmenter
from seglab.deployment.export import export_artifact
from seglab.deployment.measure import evaluate_model
from seglab.deployment.predict import predict
from seglab.engine.checkpoint import Checkpoint, load_model
from tests.data.helpers import band_scene, make_band_pairs

# a 2-step model is undertrained, and predict and evaluate say so: not what these tests look at
pytestmark = pytest.mark.filterwarnings("ignore::seglab.errors.SeglabWarning")

DATASETS = {
    "five_band_tiff": {"bands": 5, "num_classes": 3, "suffix": ".tif"},
    "grey_16_bit_png": {"bands": 1, "num_classes": 2, "suffix": ".png"},
}


@pytest.fixture(scope="module", params=list(DATASETS))
def band_run(request, tmp_path_factory) -> SimpleNamespace:
    """A 2-step MobileNetV2 run on the dataset (8 train / 4 val images of 32x32)."""
    kind = DATASETS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    data = make_band_pairs(root / "data", **kind)
    run = root / "run"
    argv = ["train", "--auto", "none", "--data", str(data), "--weights", "none"]
    argv += ["--iterations", "2", "--batch-size", "4", "--workers", "0", "--no-progress"]
    with pytest.MonkeyPatch.context() as env:  # module-wide: the per-test caches are not set yet
        env.setenv("SEGLAB_CACHE", str(root / "cache"))
        env.setenv("TORCH_HOME", str(root / "torch_home"))
        assert main([*argv, "--out", str(run)]) == 0
    return SimpleNamespace(data=data, checkpoint=run / "best.pt", **kind)


def val_images(run: SimpleNamespace) -> list[Path]:
    return sorted((run.data / "images" / "val").iterdir())


def train_statistics(run: SimpleNamespace) -> tuple[np.ndarray, np.ndarray]:
    images = [band_scene(i, run.bands, num_classes=run.num_classes)[0] for i in range(8)]
    train = np.stack(images).astype(np.float64) / 65535
    return train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3))


def test_the_checkpoint_records_the_bands_and_normalises_by_the_training_statistics(band_run):
    checkpoint = Checkpoint.load(band_run.checkpoint)
    assert checkpoint.spec.in_channels == checkpoint.dataset.in_channels == band_run.bands
    mean, std = train_statistics(band_run)
    assert checkpoint.dataset.input_mean == pytest.approx(mean, rel=1e-6)
    assert checkpoint.dataset.input_std == pytest.approx(std, rel=1e-6)
    model, _ = load_model(band_run.checkpoint)
    assert model.mean.flatten().tolist() == pytest.approx(mean, rel=1e-6)
    assert model.std.flatten().tolist() == pytest.approx(std, rel=1e-6)


def test_evaluate_reproduces_the_validation_stored_in_the_checkpoint(band_run):
    metrics = evaluate_model(band_run.checkpoint, device="cpu", progress=False)
    stored = Checkpoint.load(band_run.checkpoint).metrics
    assert metrics["confusion"] == stored["confusion"] and metrics["miou"] == stored["miou"]
    assert len(metrics["per_class"]) == band_run.num_classes and metrics["pixels"] == 4 * 32 * 32


def test_predict_reads_the_band_images_and_writes_the_models_classes(band_run, tmp_path):
    summary = predict(
        band_run.checkpoint, [str(band_run.data / "images" / "val")], tmp_path, progress=False
    )
    assert summary.written == 4 and summary.problems == []
    model, _ = load_model(band_run.checkpoint)
    images = torch.stack([read_image(path) for path in val_images(band_run)])
    assert images.shape == (4, band_run.bands, 32, 32)
    with torch.no_grad():
        expected = model(images).argmax(1).numpy()
    for path, classes in zip(val_images(band_run), expected):
        with Image.open(tmp_path / f"{path.stem}.png") as mask:
            assert mask.size == (32, 32) and np.array_equal(np.array(mask), classes)
        assert (tmp_path / f"{path.stem}_overlay.png").is_file()


def test_an_image_of_other_bands_is_named_and_skipped(band_run, tmp_path):
    rgb = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(rgb)
    summary = predict(band_run.checkpoint, [str(rgb)], tmp_path / "out", progress=False)
    if band_run.bands == 1:  # a colour image for a grey model is made grey, as ever
        assert summary.written == 1 and summary.problems == []
    else:
        assert summary.written == 0
        assert summary.problems == [
            f"{rgb}: a 3-band image where 5-band images are expected; skipped"
        ]


def test_the_onnx_export_matches_pytorch_on_band_images(band_run, tmp_path):
    out = tmp_path / "model.onnx"
    exported = export_artifact(
        band_run.checkpoint, out, "onnx", limit=2, repeats=1, report=lambda _: None, progress=False
    )
    card = exported.card
    assert card.failures == [] and card.measured.max_logit_diff < 1e-4
    assert card.info.in_channels == band_run.bands
    # the card rounds to 6 decimals
    assert card.normalisation["mean"] == pytest.approx(train_statistics(band_run)[0], abs=1e-6)
    segmenter = load_segmenter(out)
    model, _ = load_model(band_run.checkpoint)
    images = torch.stack([read_image(path) for path in val_images(band_run)])
    with torch.no_grad():
        assert torch.allclose(segmenter(images), model(images), atol=1e-4)


def test_grey_images_train_a_three_band_model_when_asked(tmp_path, monkeypatch):
    """--in-channels 3 on grey images: the band repeated, so a colour encoder's weights fit as
    they are; the checkpoint takes 3 bands, and evaluate and predict give it the grey files."""
    monkeypatch.setenv("SEGLAB_CACHE", str(tmp_path / "cache"))
    data = make_band_pairs(tmp_path / "data", bands=1, num_classes=2, suffix=".png")
    argv = ["train", "--auto", "none", "--data", str(data), "--weights", "none"]
    argv += ["--iterations", "2", "--batch-size", "4", "--workers", "0", "--no-progress"]
    assert main([*argv, "--in-channels", "3", "--out", str(tmp_path / "run")]) == 0
    checkpoint = Checkpoint.load(tmp_path / "run" / "best.pt")
    assert checkpoint.spec.in_channels == checkpoint.dataset.in_channels == 3
    assert checkpoint.config.in_channels == 3
    grey_mean = checkpoint.dataset.input_mean[0]
    assert checkpoint.dataset.input_mean == pytest.approx((grey_mean,) * 3)
    scores = evaluate_model(tmp_path / "run" / "best.pt", progress=False)
    assert scores["miou"] == pytest.approx(checkpoint.metrics["miou"], abs=1e-6)
    image = sorted((data / "images" / "val").iterdir())[0]
    summary = predict(tmp_path / "run" / "best.pt", [str(image)], tmp_path / "out")
    assert summary.written == 1 and not summary.problems
    assert main([*argv, "--in-channels", "4", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
