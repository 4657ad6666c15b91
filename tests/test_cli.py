import subprocess
import sys

import pytest

from seglab.cli import main
from seglab.models import ENCODERS


def test_unknown_encoder_is_one_line_with_suggestions(capsys, tmp_path):
    assert main(["train", "--encoder", "vgg91", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "seglab: error: unknown encoder 'vgg91'; did you mean vgg19 or vgg19_bn?"
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
    err = capsys.readouterr().err.strip()
    assert err.startswith("seglab: error: ImageNet weights for mobilenet_v2")
    assert "mobilenet_v2-7ebf99e0.pth" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
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
    assert "size 'big' is not HEIGHTxWIDTH" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["train"], ["models"]])
def test_every_command_explains_itself(command):
    result = subprocess.run(
        [sys.executable, "-m", "seglab", *command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "usage: seglab" in result.stdout
