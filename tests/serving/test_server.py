"""`seglab serve` before it serves: model names, the warning for other machines, an address
in use, and option checks, each a one-line error."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from seglab.cli import main
from seglab.errors import SeglabError
from seglab.serving.models import default_name, load_models, unique_names
from seglab.serving.server import exposure_warning, listen, page_url, serve


def test_serve_explains_itself():
    result = subprocess.run(
        [sys.executable, "-m", "seglab", "serve", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for flag in ("--host", "--port", "--max-upload", "--queue", "--batch", "--open"):
        assert flag in result.stdout


def test_models_are_named_after_their_run_folder_or_file(tmp_path):
    run = tmp_path / "runs" / "mobilenet_v2"
    run.mkdir(parents=True)
    assert default_name(run) == "mobilenet_v2"
    assert default_name(run / "best.pt") == "mobilenet_v2"
    assert default_name(run / "last.pt") == "mobilenet_v2-last"
    assert default_name(tmp_path / "model.int8.onnx") == "model.int8"
    assert default_name(tmp_path / "my model (v2).onnx") == "my-model--v2"
    assert unique_names(["a", "b", "a", "a-2", "a"]) == ["a", "b", "a-3", "a-2", "a-4"]


def test_load_models_names_runs_and_refuses_a_name_given_twice(tiny_runs, tmp_path):
    copy = tmp_path / "other" / "mobilenet_v2"
    copy.mkdir(parents=True)
    shutil.copy(tiny_runs["mobilenet_v2"] / "best.pt", copy / "best.pt")
    runs = [str(tiny_runs["mobilenet_v2"]), str(copy), f"fast={copy / 'best.pt'}"]
    assert [m.name for m in load_models(runs)] == ["mobilenet_v2", "mobilenet_v2-2", "fast"]
    with pytest.raises(SeglabError, match="the name 'x' is given to two models"):
        load_models([f"x={copy}", f"x={copy}"])
    with pytest.raises(SeglabError, match=r"holds no best\.pt or last\.pt"):
        load_models([str(tmp_path)])
    with pytest.raises(SeglabError, match="does not exist"):
        load_models([str(tmp_path / "missing.pt")])


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("127.0.0.1", None),
        ("::1", None),
        ("localhost", None),
        ("0.0.0.0", "listens on all network interfaces"),
        ("::", "listens on all network interfaces"),
        ("192.168.1.20", "is reachable from other machines"),
    ],
)
def test_hosts_other_machines_reach_are_warned_about(host, words):
    warning = exposure_warning(host)
    assert warning is None if words is None else words in warning


def test_the_warning_comes_before_anything_is_loaded(tmp_path):
    warned = []
    with pytest.raises(SeglabError, match="does not exist"):
        serve([str(tmp_path / "missing.pt")], host="0.0.0.0", port=0, warn=warned.append)
    assert len(warned) == 1 and warned[0].startswith("seglab: warning: --host 0.0.0.0 listens")


def test_an_address_in_use_is_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SeglabError, match=rf"127.0.0.1:{port} .*choose another --port"):
            listen("127.0.0.1", port)
    sock = listen("127.0.0.1", 0)
    assert sock.getsockname()[1] > 0
    sock.close()
    assert page_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/"
    assert page_url("::", 8000) == "http://[::1]:8000/"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--queue", "0"], "--queue 0 must be at least 1"),
        (["--batch", "0"], "--batch 0 must be at least 1"),
        (["--max-upload", "0"], "--max-upload 0.0 must be a positive number"),
        (["--port", "70000"], "--port 70000 must be between 0 and 65535"),
    ],
)
def test_bad_options_are_one_line(capsys, flags, message):
    assert main(["serve", str(Path("runs/x/best.pt")), *flags]) == 2
    assert capsys.readouterr().err.strip() == f"seglab: error: serve: {message}"


def test_the_threads_are_set_before_the_models_load_and_put_back_after(
    tiny_runs, monkeypatch, capsys
):
    """ONNX Runtime takes its thread count when a session opens, so the choice must be in place
    before load_models; a serve() called from Python leaves the caller's threads as they were."""
    import torch

    import seglab.serving.server as server_module
    from seglab.serving import models as models_module

    seen = {}
    load = models_module.load_models

    def load_models(specs, device="cpu"):
        seen["loading"] = torch.get_num_threads()
        return load(specs, device)

    class Server:
        def run(self, sockets):
            seen["serving"] = torch.get_num_threads()

    monkeypatch.setattr(models_module, "load_models", load_models)
    monkeypatch.setattr(server_module, "_uvicorn_server", lambda config, on_ready: Server())
    before = torch.get_num_threads()
    lines = []
    serve([str(tiny_runs["mobilenet_v2"])], port=0, threads=1, report=lines.append)
    assert seen == {"loading": 1, "serving": 1}
    assert torch.get_num_threads() == before
    assert any(line.startswith("threads: ") and "1 thread (given)" in line for line in lines)


def test_bad_threads_are_one_line(capsys):
    assert main(["serve", str(Path("runs/x/best.pt")), "--threads", "many"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "seglab: error: serve: --threads: 'many' is not auto or an integer"
