"""The HTTP API through FastAPI's test client: each endpoint, each refusal with its status and
message (the server serving on after each), the bounded queue and batching, and masks identical
to `seglab predict`'s."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import tempfile
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from seglab.cli import main
from seglab.engine.checkpoint import Checkpoint
from seglab.serving.app import create_app
from seglab.serving.models import ServedModel, load_models
from tests.deployment.helpers import write_inputs
from tests.serving.conftest import GatedSegmenter, gated, png_bytes


def upload(data: bytes, name: str = "photo.png", kind: str = "image/png") -> dict:
    return {"image": (name, data, kind)}


def mask_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as mask:
        assert mask.mode == "P"
        return np.array(mask)


@pytest.fixture
def client(served):
    with TestClient(create_app(served)) as client:
        yield client


def test_health_and_models(client, served):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == ["mobilenet_v2", "vgg19"]
    listing = client.get("/models").json()
    assert listing["default"] == "mobilenet_v2"
    assert [m["name"] for m in listing["models"]] == ["mobilenet_v2", "vgg19"]
    info = served[0].segmenter.info
    first = listing["models"][0]
    assert first["classes"] == list(info.classes)
    assert first["colors"] == [list(c) for c in info.colors]
    assert first["kind"] == "torch" and first["card"] is None


def test_a_deployment_card_is_listed_when_the_artifact_has_one():
    """Its figures; the machine that measured it only when the server is told to say so."""
    card = {"parity": {"max_logit_difference": 1e-6}, "miou": 0.61, "machine": "x86_64"}
    with TestClient(create_app([gated("int8", card=card), gated("plain")])) as client:
        models = client.get("/models").json()["models"]
    assert models[0]["card"] == {"parity": {"max_logit_difference": 1e-6}, "miou": 0.61}
    assert models[1]["card"] is None
    app = create_app([gated("int8", card=card)], expose_details=True)
    with TestClient(app) as client:
        assert client.get("/models").json()["models"][0]["card"] == card
    assert models[0]["warnings"] == models[1]["warnings"] == []  # nothing known against them


def test_models_says_what_is_wrong_with_each_and_the_page_shows_it_beside_the_mask(
    tiny_runs, tmp_path
):
    stuck = "predicts sky on 99.7% of scored pixels"
    best = Checkpoint.load(tiny_runs["mobilenet_v2"] / "best.pt")
    for name, reason in (("useless", stuck), ("sound", None)):
        metrics = {**best.metrics, "degenerate": reason, "undertrained": None}
        dataclasses.replace(best, metrics=metrics).save(tmp_path / f"{name}.pt")
    served = load_models([str(tmp_path / "useless.pt"), str(tmp_path / "sound.pt")])
    with TestClient(create_app(served)) as client:
        models = client.get("/models").json()["models"]
        script = client.get("/static/app.js").text
        style = client.get("/static/style.css").text
    assert [m["name"] for m in models] == ["useless", "sound"]
    verdict = (
        f" is a useless model: on its validation images it {stuck}; its predictions say "
        "nothing. Train longer (a larger --time-budget or --iterations) or check the labels "
        "(seglab data check)"
    )
    assert models[0]["warnings"] == ["useless" + verdict]  # the model's name, not its file
    assert models[1]["warnings"] == []
    assert str(tmp_path) not in json.dumps(models)
    with TestClient(create_app(served, expose_details=True)) as client:
        detailed = client.get("/models").json()["models"]
    assert detailed[0]["warnings"] == [f"{tmp_path / 'useless.pt'}{verdict}"]
    assert detailed[0]["path"] == str(tmp_path / "useless.pt")
    # Each warning a visible remark right after the photo and its mask, as text, never HTML.
    assert "card.append(title, stage, ...remarks(model)," in script
    assert "(model.warnings || []).map(" in script
    assert 'element("p", "remark", `⚠ ${text}`)' in script and "innerHTML" not in script
    assert ".remark {" in style


def test_the_mask_is_what_seglab_predict_writes(client, tiny_runs, tmp_path):
    """Both models, side by side, on the same uploads: each mask equals the file `seglab
    predict` writes for the same image with the same model."""
    inputs = write_inputs(tmp_path / "in")
    for model, run in (("mobilenet_v2", "mobilenet_v2"), ("vgg19", "vgg19")):
        out = tmp_path / f"out_{model}"
        checkpoint = str(tiny_runs[run] / "best.pt")
        assert main(["predict", "--checkpoint", checkpoint, str(inputs), "--out", str(out)]) == 0
        for image in sorted(inputs.glob("*.png")):
            response = client.post(f"/predict?model={model}", files=upload(image.read_bytes()))
            assert response.headers["x-model"] == model
            with Image.open(out / image.name) as expected:
                assert np.array_equal(mask_of(response), np.array(expected))
                palette = expected.getpalette()
            with Image.open(io.BytesIO(response.content)) as mask:
                assert mask.getpalette() == palette
    # no model named: the first served; the raw image as the body works too
    image = (inputs / "in0.png").read_bytes()
    default = client.post("/predict", content=image, headers={"content-type": "image/png"})
    assert default.headers["x-model"] == "mobilenet_v2"
    assert np.array_equal(
        mask_of(default), np.array(Image.open(tmp_path / "out_mobilenet_v2/in0.png"))
    )
    # the model chosen by a form field
    form = client.post("/predict", files=upload(image), data={"model": "vgg19"})
    assert form.headers["x-model"] == "vgg19"


def test_json_gives_class_shares_latency_model_and_size(client, served):
    image = png_bytes(40, 52)
    for response in (
        client.post("/predict?format=json&model=vgg19", files=upload(image)),
        client.post(
            "/predict?model=vgg19", files=upload(image), headers={"accept": "application/json"}
        ),
    ):
        assert response.status_code == 200
        body = response.json()
        assert body["model"] == "vgg19" and (body["width"], body["height"]) == (52, 40)
        assert body["latency_ms"] > 0 and body["inference_ms"] > 0 and body["batch"] == 1
        names = [c["name"] for c in body["classes"]]
        assert names == list(served[1].segmenter.info.classes)
        assert sum(c["share"] for c in body["classes"]) == pytest.approx(1, abs=1e-4)
    png = mask_of(client.post("/predict?model=vgg19", files=upload(image)))
    for entry in body["classes"]:
        assert entry["share"] == pytest.approx((png == entry["index"]).mean(), abs=1e-6)


def truncated() -> bytes:
    return png_bytes(64, 64)[:200]


def corrupted() -> bytes:
    data = bytearray(png_bytes(64, 64))
    data[60:400] = bytes(340)  # the header says PNG; the compressed data is garbage
    return bytes(data)


def too_many_pixels() -> bytes:  # a small file of a large image
    buffer = io.BytesIO()
    Image.new("L", (3000, 2000)).save(buffer, "PNG")
    return buffer.getvalue()


MULTIPART = "multipart/form-data; boundary=b"
FIELDS_ONLY = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nvgg19\r\n--b--\r\n'
BAD_UPLOADS = [
    # (what is sent, status, words of the message)
    ({"files": upload(b"%PDF-1.4 not an image", "a.pdf", "application/pdf")}, 415, "not an image"),
    ({"files": upload(b"hello", "a.png", "image/png")}, 415, "not an image"),
    ({"content": b"plain text", "headers": {"content-type": "text/plain"}}, 415, "not an image"),
    ({"files": upload(truncated())}, 400, "truncated or damaged"),
    ({"files": upload(corrupted())}, 400, "truncated or damaged"),
    ({"files": upload(b"")}, 400, "empty"),
    ({"content": FIELDS_ONLY, "headers": {"content-type": MULTIPART}}, 400, "no image in the form"),
    ({"content": b"--b\r\nbroken", "headers": {"content-type": MULTIPART}}, 400, "multipart"),
    ({"files": upload(too_many_pixels())}, 413, "megapixels"),
    ({"content": b"\0" * 3_000_000, "headers": {"content-type": "image/png"}}, 413, "2 MB"),
]


@pytest.mark.parametrize(("request_", "status", "words"), BAD_UPLOADS)
def test_bad_input_is_refused_and_the_server_serves_on(served, request_, status, words):
    app = create_app(served, max_upload=2 * 1024 * 1024, max_pixels=4_000_000)
    with TestClient(app) as client:
        response = client.post("/predict?model=vgg19", **request_)
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
        assert client.post("/predict", files=upload(png_bytes())).status_code == 200


def test_an_upload_over_the_limit_is_refused_while_it_arrives(served):
    """A body without Content-Length (chunked) is cut off once it passes the limit, not read to
    its end; one whose Content-Length already says so is refused before it is read. Driven at
    the ASGI level: the test client would read the whole body before the application runs."""
    app = create_app(served, max_upload=256 * 1024)

    def post(headers, chunks):
        received, sent = [], []

        async def receive():
            received.append(1)
            more = len(received) < chunks
            return {"type": "http.request", "body": b"\0" * 65536, "more_body": more}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }  # fmt: skip
        asyncio.run(app(scope, receive, send))
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, json.loads(body)["detail"], len(received)

    status, detail, read = post([(b"content-type", b"image/png")], chunks=64)
    assert status == 413 and detail == "the upload is over the limit of 0.25 MB"
    assert read == 5  # 4 chunks make the limit; the fifth passes it
    announced = [(b"content-type", b"image/png"), (b"content-length", b"99999999")]
    assert post(announced, chunks=64)[::2] == (413, 0)  # refused unread
    with TestClient(app) as client:
        assert client.post("/predict", files=upload(png_bytes())).status_code == 200


def test_unknown_model_and_format_are_named(client):
    response = client.post("/predict?model=resnet", files=upload(png_bytes()))
    assert response.status_code == 404
    assert response.json()["detail"] == "no model 'resnet' is served; served: mobilenet_v2, vgg19"
    form = client.post("/predict", files=upload(png_bytes()), data={"model": "resnet"})
    assert form.status_code == 404
    assert client.post("/predict?format=tiff", files=upload(png_bytes())).status_code == 400
    assert client.post("/predict", files=upload(png_bytes())).status_code == 200


def test_a_full_queue_answers_503_with_retry_after():
    """Queue of one, worker held: the first request runs (blocked), the second waits, the third
    is refused at once; once the worker is released the first two complete."""
    model = gated(open_=False)
    segmenter = model.segmenter
    app = create_app([model], queue_size=1, batch=1)
    with TestClient(app) as client:
        answers = {}

        def send(key):
            answers[key] = client.post("/predict", files=upload(png_bytes()))

        first = threading.Thread(target=send, args=("first",))
        first.start()
        assert segmenter.entered.wait(10)  # the worker holds the first request
        second = threading.Thread(target=send, args=("second",))
        second.start()
        wait_until(lambda: app.state.queue.waiting == 1)
        refused = client.post("/predict", files=upload(png_bytes()))
        assert refused.status_code == 503
        assert "busy" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("/health").json()["queue"] == {"waiting": 1, "capacity": 1}
        segmenter.gate.set()
        first.join(10)
        second.join(10)
        assert answers["first"].status_code == answers["second"].status_code == 200
        assert client.post("/predict", files=upload(png_bytes())).status_code == 200


def test_concurrent_requests_of_one_size_run_as_one_batch():
    model = gated(open_=False)
    segmenter = model.segmenter
    app = create_app([model], queue_size=8, batch=4)
    with TestClient(app) as client:
        answers = []

        def send(height):
            response = client.post("/predict", files=upload(png_bytes(height, 40)))
            answers.append((height, response))

        threads = [threading.Thread(target=send, args=(32,))]
        threads[0].start()
        assert segmenter.entered.wait(10)
        threads += [threading.Thread(target=send, args=(h,)) for h in (48, 48, 48, 24)]
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: app.state.queue.waiting == 4)
        segmenter.gate.set()
        for thread in threads:
            thread.join(10)
    assert sorted(segmenter.batches) == [1, 1, 3]  # the three 48x40 images together
    for height, response in answers:
        mask = mask_of(response)
        assert mask.shape == (height, 40) and (mask == 2).all()
        assert response.headers["x-batch-size"] == ("3" if height == 48 else "1")


def test_nothing_from_a_request_reaches_the_file_system(served, monkeypatch, tmp_path):
    """A large upload (over the 1 MB at which form parsers spool to disk) under a file name that
    points elsewhere: served with every temporary-file function disabled, nothing written."""

    def refuse(*args, **kwargs):
        raise AssertionError("a request reached the file system")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(buffer, "PNG")
    assert len(buffer.getvalue()) > 1024 * 1024
    name = str(tmp_path / "written.png")
    with TestClient(create_app(served)) as client:
        response = client.post("/predict", files=upload(buffer.getvalue(), name=name))
    assert mask_of(response).shape == (700, 700)
    assert list(tmp_path.iterdir()) == []


class FailsOnce(GatedSegmenter):
    def __call__(self, images):
        if not self.batches and not getattr(self, "failed", False):
            self.failed = True
            raise RuntimeError("out of memory")
        return super().__call__(images)


def test_a_failing_model_is_a_500_and_the_server_serves_on():
    segmenter = FailsOnce()
    segmenter.gate.set()
    with TestClient(create_app([ServedModel("flaky", segmenter)])) as client:
        response = client.post("/predict", files=upload(png_bytes()))
        assert response.status_code == 500
        assert response.json()["detail"] == "model flaky failed: out of memory"
        assert client.post("/predict", files=upload(png_bytes())).status_code == 200


def test_the_page_and_its_files_load_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    texts = [page.text]
    for path, media in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        texts.append(response.text)
    for text in texts:
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert 'src="static/app.js"' in page.text
    assert client.get("/static/../pyproject.toml").status_code == 404
    assert client.get("/docs").status_code == 404  # FastAPI's docs page loads from a CDN


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
