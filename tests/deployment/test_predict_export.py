import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli import main
from seglab.data.synthetic import INFO, SyntheticScenes
from seglab.deployment.export import export_onnx
from seglab.deployment.runtime import load_runtime
from seglab.engine.checkpoint import load_model


def write_inputs(folder, sizes=((64, 80), (50, 70))):
    folder.mkdir(parents=True, exist_ok=True)
    for k, (h, w) in enumerate(sizes):
        image, _ = SyntheticScenes("test", size=(h, w))[k]
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
            folder / f"in{k}.png"
        )
    return folder


def test_predict_writes_palette_masks_of_the_input_size(tiny_runs, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(inputs),
                "--checkpoint",
                str(tiny_runs["mobilenet_v2"] / "best.pt"),
                "--out",
                str(out),
                "--probabilities",
            ]
        )
        == 0
    )
    model, _ = load_model(tiny_runs["mobilenet_v2"] / "best.pt")
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
        assert (out / f"in{k}_overlay.png").is_file()
        assert np.load(out / f"in{k}_probabilities.npy").shape == (INFO.num_classes, h, w)


def test_an_unreadable_input_is_named_and_the_rest_are_written(tiny_runs, tmp_path, capsys):
    inputs = write_inputs(tmp_path / "in")
    (inputs / "broken.png").write_bytes(b"not an image")
    argv = [
        "predict",
        str(inputs / "*.png"),
        str(tmp_path / "missing.jpg"),
        "--checkpoint",
        str(tiny_runs["mobilenet_v2"] / "best.pt"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{inputs / 'broken.png'}: cannot read image" in err
    assert f"{tmp_path / 'missing.jpg'}: no such file or folder" in err
    assert {p.name for p in (tmp_path / "out").glob("in?.png")} == {"in0.png", "in1.png"}


def test_onnx_runtime_matches_pytorch_and_predict_takes_the_onnx_file(tiny_runs, tmp_path, capsys):
    checkpoint = tiny_runs["vgg19"] / "best.pt"
    onnx_path = tmp_path / "model.onnx"
    assert (
        main(
            ["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(onnx_path)]
        )
        == 0
    )
    assert "largest logit difference" in capsys.readouterr().out
    model, _ = load_model(checkpoint)
    runtime = load_runtime(onnx_path)
    assert runtime.kind == "onnx" and runtime.info.classes == INFO.classes
    for shape in ((1, 3, 64, 80), (3, 3, 97, 131)):  # dynamic batch, height and width
        x = torch.rand(shape)
        with torch.no_grad():
            assert (runtime.model(x) - model(x)).abs().max() < 1e-4
    inputs = write_inputs(tmp_path / "in")
    assert (
        main(["predict", str(inputs), "--checkpoint", str(onnx_path), "--out", str(tmp_path / "o")])
        == 0
    )
    assert (tmp_path / "o" / "in1.png").is_file()


def test_export_reports_the_largest_difference(tiny_runs, tmp_path):
    assert export_onnx(tiny_runs["mobilenet_v2"] / "best.pt", tmp_path / "m.onnx") < 1e-4


def test_a_foreign_onnx_file_is_refused(tmp_path, tiny_runs, capsys):
    path = tmp_path / "plain.onnx"
    export_onnx(tiny_runs["mobilenet_v2"] / "best.pt", path)
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    assert (
        main(["predict", str(tmp_path), "--checkpoint", str(path), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "not exported by seglab" in capsys.readouterr().err


def test_benchmark_runs_eager_and_onnxruntime(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = [
        "benchmark",
        "--encoder",
        "mobilenet_v2",
        "--size",
        "64x96",
        "--backends",
        "eager,onnxruntime",
        "--repeats",
        "3",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "eager" in table and "onnxruntime" in table
    results = {r["backend"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"eager", "onnxruntime"}
    for r in results.values():
        assert 0 < r["median_ms"] <= r["p90_ms"] and r["images_per_s"] > 0 and r["peak_rss_mb"] > 0


def test_benchmark_with_data_gives_each_backends_miou(tiny_runs, tmp_path):
    out = tmp_path / "bench.json"
    argv = [
        "benchmark",
        "--checkpoint",
        str(tiny_runs["mobilenet_v2"] / "best.pt"),
        "--data",
        str(tiny_runs["data"]),
        "--size",
        "64x80",
        "--backends",
        "eager,onnxruntime",
        "--repeats",
        "2",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    results = {r["backend"]: r for r in json.loads(out.read_text())["results"]}
    from seglab.engine.evaluate import evaluate_checkpoint

    expected = evaluate_checkpoint(tiny_runs["mobilenet_v2"] / "best.pt", workers=0, progress=False)
    assert results["eager"]["miou"] == pytest.approx(expected["miou"], abs=1e-6)
    assert results["onnxruntime"]["miou"] == pytest.approx(expected["miou"], abs=1e-3)


def test_videos_need_opencv_or_are_read_frame_by_frame(tiny_runs, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (80, 64))
    for _ in range(3):
        writer.write(np.random.randint(0, 255, (64, 80, 3), dtype=np.uint8))
    writer.release()
    argv = [
        "predict",
        str(video),
        "--checkpoint",
        str(tiny_runs["mobilenet_v2"] / "best.pt"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 0
    assert len(list((tmp_path / "o").glob("clip_*_overlay.png"))) == 3
    shutil.rmtree(tmp_path / "o")
