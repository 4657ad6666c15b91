"""Predicting on new images: what is written, and that nothing is written over an input or into a
place that cannot hold it, checked before any work."""

import dataclasses
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.data.synthetic import INFO
from seglab.deployment.artifacts import file_sha256, read_card, write_card
from seglab.deployment.predict import check_predict_outputs, expand_inputs, predict
from seglab.engine.checkpoint import Checkpoint, load_model
from seglab.errors import SeglabError, SeglabWarning
from tests.deployment.helpers import unwritable_folder, write_inputs


def files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_predict_writes_palette_masks_of_the_input_size(tiny_runs, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    checkpoint = tiny_runs["mobilenet_v2"] / "best.pt"
    summary = predict(checkpoint, [str(inputs)], out, probabilities=True, progress=False)
    assert summary.written == 2 and summary.problems == []
    model, _ = load_model(checkpoint)
    for k, (h, w) in enumerate(((64, 80), (50, 70))):
        with Image.open(out / f"in{k}.png") as mask:
            assert mask.mode == "P" and mask.size == (w, h)
            palette = np.array(mask.getpalette()[: 3 * INFO.num_classes]).reshape(-1, 3)
            assert palette.tolist() == [list(c) for c in INFO.colors]
            classes = np.array(mask)
        image = torch.from_numpy(np.array(Image.open(inputs / f"in{k}.png"))).permute(2, 0, 1)
        with torch.no_grad():
            expected = model(image[None].float() / 255).argmax(1)[0].numpy()
        assert (classes == expected).mean() > 0.999
        with Image.open(out / f"in{k}_overlay.png") as overlay:  # the image beside its overlay
            assert overlay.width > 2 * w and overlay.height > h
            left = np.array(overlay.convert("RGB"))[:h, :w]
        assert np.abs(left.astype(int) - image.permute(1, 2, 0).numpy()).max() <= 1
        probabilities = np.load(out / f"in{k}_probabilities.npy")
        assert probabilities.shape == (INFO.num_classes, h, w) and probabilities.dtype == np.float16


def test_an_unreadable_input_is_named_and_the_rest_are_written(tiny_runs, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    (inputs / "broken.png").write_bytes(b"not an image")
    reported = []
    summary = predict(
        tiny_runs["mobilenet_v2"] / "best.pt",
        [str(inputs / "*.png"), str(tmp_path / "missing.jpg")],
        tmp_path / "out",
        report=reported.append,
        progress=False,
    )
    assert summary.written == 2 and summary.problems == reported and len(reported) == 2
    assert any(line.startswith(f"{inputs / 'broken.png'}: cannot read image") for line in reported)
    assert f"{tmp_path / 'missing.jpg'}: no such file or folder" in reported
    assert {p.name for p in (tmp_path / "out").glob("in?.png")} == {"in0.png", "in1.png"}


def test_predict_never_writes_over_an_input(tiny_runs, tmp_path):
    pin = write_inputs(tmp_path / "pin")
    before = files(pin)
    with pytest.raises(SeglabError) as error:
        predict(tiny_runs["mobilenet_v2"] / "best.pt", [str(pin)], pin, progress=False)
    assert str(error.value) == (
        f"predict: output {pin / 'in0.png'} would overwrite the input image; choose another --out"
    )
    assert files(pin) == before  # refused before anything was written
    # an earlier overlay among the inputs is an input too
    out = tmp_path / "out"
    shutil.copy(pin / "in0.png", tmp_path / "in0_overlay.png")
    with pytest.raises(SeglabError, match=r"in0_overlay.png would overwrite the input image"):
        check_predict_outputs(tmp_path, [pin / "in0.png", tmp_path / "in0_overlay.png"])
    with pytest.raises(SeglabError, match=r"would both write .*in0_overlay.png"):  # elsewhere
        check_predict_outputs(out, [pin / "in0.png", tmp_path / "in0_overlay.png"])
    assert check_predict_outputs(out, [pin / "in0.png", pin / "in1.png"]) == out


def test_predict_refuses_an_out_that_cannot_hold_its_outputs_before_any_work(tmp_path):
    inputs = write_inputs(tmp_path / "in")
    missing_model = tmp_path / "no_such_model.pt"  # never loaded: the output is checked first
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"a file")
    with pytest.raises(SeglabError, match=rf"^predict: --out {taken} is a file, not a folder"):
        predict(missing_model, [str(inputs)], taken, progress=False)
    with pytest.raises(SeglabError, match=rf"^predict: --out {taken / 'sub'}: {taken} is a file"):
        predict(missing_model, [str(inputs)], taken / "sub", progress=False)
    locked = unwritable_folder(tmp_path)
    with pytest.raises(SeglabError, match=rf"^predict: --out {locked / 'out'} cannot be written"):
        predict(missing_model, [str(inputs)], locked / "out", progress=False)
    with pytest.raises(SeglabError, match=r"checkpoint .*no_such_model.pt does not exist"):
        predict(missing_model, [str(inputs)], tmp_path / "fine", progress=False)
    assert not (tmp_path / "fine").exists()


def test_two_inputs_that_would_write_the_same_output_are_refused(tmp_path):
    a, b = write_inputs(tmp_path / "a"), write_inputs(tmp_path / "b")
    with pytest.raises(SeglabError) as error:
        check_predict_outputs(tmp_path / "out", expand_inputs([str(a), str(b)]))
    message = str(error.value)
    assert message.startswith(f"predict: inputs {a / 'in0.png'} and {b / 'in0.png'} would both")
    assert len(message.splitlines()) == 1


def test_a_file_named_twice_is_predicted_once(tmp_path):
    inputs = write_inputs(tmp_path / "in")
    found = expand_inputs([str(inputs), str(inputs / "in0.png"), str(inputs / "*.png")])
    assert found == [inputs / "in0.png", inputs / "in1.png"]


def test_videos_are_read_frame_by_frame(tiny_runs, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (80, 64))
    for _ in range(3):
        writer.write(np.random.randint(0, 255, (64, 80, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "o"
    summary = predict(tiny_runs["mobilenet_v2"] / "best.pt", [str(video)], out, progress=False)
    assert summary.written == 3
    assert len(list(out.glob("clip_*_overlay.png"))) == 3
    # beside the frames: the overlay video, at the source's rate, and how fast it went
    (overlay,) = summary.videos
    assert overlay.path == out / "clip_overlay.mp4" and overlay.frames == 3
    assert overlay.frames_per_second > 0
    capture = cv2.VideoCapture(str(overlay.path))
    assert capture.get(cv2.CAP_PROP_FPS) == 5 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    ok, frame = capture.read()
    assert ok and frame.shape == (64, 80, 3)
    capture.release()
    with pytest.raises(SeglabError, match=r"output .*clip_overlay.mp4 would overwrite an input"):
        check_predict_outputs(tmp_path, [video, tmp_path / "clip_overlay.mp4"])
    argv = ["predict", str(video), "--checkpoint", str(tiny_runs["mobilenet_v2"] / "best.pt")]
    assert main([*argv, "--out", str(tmp_path / "o4")]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"clip.mp4: 3 frames at [\d.]+ frames/s -> {tmp_path / 'o4'}", printed)
    # a frame's output that another input would write too: refused
    Image.open(out / "clip_000001.png").convert("RGB").save(tmp_path / "clip_000001.jpg")
    with pytest.raises(SeglabError, match=r"clip_000001.jpg and .*clip.mp4 would both write"):
        check_predict_outputs(tmp_path / "o2", [tmp_path / "clip_000001.jpg", video])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "clip.mp4").write_bytes(video.read_bytes())
    with pytest.raises(SeglabError, match=r"clip.mp4 and .*other/clip.mp4 would both write"):
        check_predict_outputs(tmp_path / "o3", [video, tmp_path / "other" / "clip.mp4"])


STUCK = "predicts sky on 99.7% of scored pixels"
RISING = "validation mIoU was still rising at the end; train longer"


def with_record(checkpoint, out, **record):
    """A copy of ``checkpoint`` whose metrics record says ``record`` (degenerate, undertrained)."""
    loaded = Checkpoint.load(checkpoint)
    dataclasses.replace(loaded, metrics={**loaded.metrics, **record}).save(out)
    return out


def seglab_warnings(model, inputs, out) -> list[str]:
    """The SeglabWarnings that predicting ``inputs`` with ``model`` into ``out`` gives."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict(model, [str(inputs)], out, progress=False)
    return [str(w.message) for w in caught if issubclass(w.category, SeglabWarning)]


def test_predict_says_a_useless_or_undertrained_model_is_one_and_still_predicts(
    tiny_runs, tmp_path
):
    best = tiny_runs["mobilenet_v2"] / "best.pt"
    useless = with_record(best, tmp_path / "useless.pt", degenerate=STUCK, undertrained=RISING)
    inputs = write_inputs(tmp_path / "in")
    said = seglab_warnings(useless, inputs, tmp_path / "a")
    assert said == [
        f"{useless} is a useless model: on its validation images it {STUCK}; its predictions "
        "say nothing. Train longer (a larger --time-budget or --iterations) or check the labels "
        "(seglab data check)",
        f"{useless} is undertrained: {RISING}",
    ]
    assert len(list((tmp_path / "a").glob("in?.png"))) == 2
    floor = "mIoU 15.00% is no better than predicting sky everywhere (16.67%)"  # older records
    no_better = with_record(best, tmp_path / "floor.pt", degenerate=floor)
    with pytest.warns(SeglabWarning, match=re.escape(f"on its validation images its {floor};")):
        predict(no_better, [str(inputs)], tmp_path / "b", progress=False)


def test_a_sound_model_or_an_older_record_gets_no_warning(tiny_runs, tmp_path):
    best = tiny_runs["mobilenet_v2"] / "best.pt"
    sound = with_record(best, tmp_path / "sound.pt", degenerate=None, undertrained=None)
    older = Checkpoint.load(best)
    metrics = {k: v for k, v in older.metrics.items() if k not in ("degenerate", "undertrained")}
    dataclasses.replace(older, metrics=metrics).save(tmp_path / "older.pt")
    inputs = write_inputs(tmp_path / "in")
    for model in (sound, tmp_path / "older.pt"):
        out = tmp_path / model.stem
        assert seglab_warnings(model, inputs, out) == []


def test_the_command_line_prints_the_warning_as_one_line(tiny_runs, tmp_path, capsys):
    useless = with_record(
        tiny_runs["mobilenet_v2"] / "best.pt", tmp_path / "u.pt", degenerate=STUCK
    )
    inputs = write_inputs(tmp_path / "in")
    argv = ["predict", str(inputs), "--checkpoint", str(useless), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if "useless" in line] == [
        f"seglab: warning: {useless} is a useless model: on its validation images it {STUCK}; "
        "its predictions say nothing. Train longer (a larger --time-budget or --iterations) or "
        "check the labels (seglab data check)"
    ]


def test_an_exported_model_speaks_through_its_source_checkpoint_or_its_cards_copy(
    exported, tiny_runs, tmp_path
):
    """The checkpoint an exported file came from gives its verdicts while that file is still
    where the card says, with the same sha256; away from it, the copy the card made at export."""
    useless = with_record(
        tiny_runs["mobilenet_v2"] / "best.pt",
        tmp_path / "u.pt",
        degenerate=STUCK,
        undertrained=None,
    )
    artifact = tmp_path / "model.onnx"
    shutil.copy(exported("onnx")[0], artifact)
    source = {"checkpoint": str(useless), "path": str(useless), "sha256": file_sha256(useless)}
    write_card(artifact, dataclasses.replace(read_card(artifact), source=source))
    inputs = write_inputs(tmp_path / "in")
    said = seglab_warnings(artifact, inputs, tmp_path / "a")
    assert said == [
        f"{artifact} is a useless model: on its validation images it {STUCK}; its predictions "
        "say nothing. Train longer (a larger --time-budget or --iterations) or check the labels "
        "(seglab data check)"
    ]
    with_record(useless, useless, degenerate=None)  # changed since the export: it says nothing
    assert seglab_warnings(artifact, inputs, tmp_path / "b") == []
    # away from its checkpoint, the verdicts the card copied at export speak for the file
    copied = {**source, "sha256": "0" * 64, "degenerate": STUCK, "undertrained": RISING}
    write_card(artifact, dataclasses.replace(read_card(artifact), source=copied))
    assert seglab_warnings(artifact, inputs, tmp_path / "c") == [
        f"{artifact} is a useless model: on its validation images it {STUCK}; its predictions "
        "say nothing. Train longer (a larger --time-budget or --iterations) or check the labels "
        "(seglab data check)",
        f"{artifact} is undertrained: {RISING}",
    ]
    assert f"- **a useless model**: {STUCK}" in read_card(artifact).to_markdown("m")


def test_a_full_disk_is_one_line_and_leaves_no_partial_mask(tiny_runs, tmp_path, monkeypatch):
    import errno

    saved = Image.Image.save

    def fill_the_disk(image, target, *args, **kwargs):
        if str(target).endswith("in1_overlay.png"):  # the disk fills while writing this one
            Path(target).write_bytes(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return saved(image, target, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", fill_the_disk)
    inputs, out = write_inputs(tmp_path / "in"), tmp_path / "out"
    with pytest.raises(SeglabError, match=r"^predict: cannot write .*in1_overlay\.png: No space"):
        predict(tiny_runs["mobilenet_v2"] / "best.pt", [str(inputs)], out, progress=False)
    assert not (out / "in1_overlay.png").exists()
    assert Image.open(out / "in0.png").size == (80, 64)  # the one written before is whole
