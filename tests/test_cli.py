import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from seglab.cli import main
from seglab.models import ENCODERS


def test_unknown_encoder_is_one_line_with_suggestions(capsys, tmp_path):
    assert main(["train", "--encoder", "vgg91", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "seglab: error: command line: --encoder: unknown encoder 'vgg91'; "
        "did you mean vgg19 or vgg19_bn?"
    )
    assert not (tmp_path / "r").exists()


def test_required_imagenet_weights_offline_fail_without_traceback(capsys, tmp_path):
    argv = [
        "train",
        "--weights",
        "imagenet",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--out",
        str(tmp_path / "r"),
        "--no-progress",
    ]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # torch.hub announces the download it tries; then one error line, and no traceback
    errors = [line for line in lines if line.startswith("seglab: error:")]
    assert len(errors) == 1 and errors == lines[-1:]
    assert errors[0].startswith("seglab: error: ImageNet weights for mobilenet_v2")
    assert "mobilenet_v2-7ebf99e0.pth" in errors[0] and not any("Traceback" in x for x in lines)
    assert not (tmp_path / "r" / "best.pt").exists()


def test_models_table_lists_every_encoder_and_the_cache(torch_home, capsys):
    cached = torch_home / "hub" / "checkpoints" / ENCODERS["resnet34"].weights_file
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert main(["models", "--size", "64x96"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    for name in ENCODERS:
        assert name in rows
        assert rows[name][-1] == ("yes" if name == "resnet34" else "no")
    assert str(torch_home / "hub" / "checkpoints") in out


def test_bad_size_is_a_user_error(capsys):
    assert main(["models", "--size", "big"]) == 2
    assert "size: 'big' is not HEIGHTxWIDTH" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["train"], ["models"]])
def test_every_command_explains_itself(command):
    result = subprocess.run(
        [sys.executable, "-m", "seglab", *command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "usage: seglab" in result.stdout


def test_help_loads_no_torch():
    """`seglab --help` must answer at once: torch is imported only by commands that run."""
    code = "import sys, seglab.cli; seglab.cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


BAD_TRAINING_INPUTS = [
    (["--batch-size", "0"], "--batch-size: 0 must be at least 1"),
    (["--lr", "nan"], "--lr: 'nan' is not a finite number"),
    (["--epochs", "0"], "--epochs: 0 must be at least 1"),
    (["--schedule", "linear"], "--schedule: 'linear' is not one of poly, cosine, constant"),
    (["--weights", "missing.pth"], "weights: file missing.pth does not exist"),
    (["--config", "CONFIG"], "exp.yaml: lr: 'fast' is not a number"),
    (["--resume", "RUN", "--config", "CONFIG"], "give no --config"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_TRAINING_INPUTS)
def test_bad_training_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, message):
    (tmp_path / "exp.yaml").write_text('lr: "fast"\n')
    argv = [a.replace("CONFIG", str(tmp_path / "exp.yaml")) for a in argv]
    argv = [a.replace("RUN", str(tmp_path / "run")) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    out = ["--out", str(tmp_path / "run")] if "--resume" not in argv else []
    assert main(["train", "--data", "synthetic", "--no-progress", *out, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_seglab_warnings_are_one_line(capsys, tmp_path):
    """A checkpoint with an option this seglab does not know loads, with one warning line."""
    fixture = Path(__file__).parent / "fixtures" / "checkpoints" / "extra_option.pt"
    out = tmp_path / "pred"
    (tmp_path / "in").mkdir()
    Image.new("RGB", (40, 32), (90, 120, 30)).save(tmp_path / "in" / "a.png")
    argv = ["predict", "--checkpoint", str(fixture), str(tmp_path / "in"), "--out", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "CheckpointWarning" not in err and "Checkpoint.load" not in err  # no Python warning
    assert [line for line in err.splitlines() if line.startswith("seglab:")] == [
        f"seglab: warning: {fixture}: config options unknown to this seglab left out: "
        "retired_option"
    ]
    assert (out / "a.png").is_file()
