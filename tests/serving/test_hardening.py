"""What one client cannot do to the server: make a batch cost more than its pixel budget, fill
memory with decoded images waiting, hold connections with stalled uploads, take every slot, read
its own input back in an error, or learn the server's paths and machine; and what the log says
when a client goes away. Stand-in models only (no trained run), a real uvicorn on a free port
where connections matter."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest
import uvicorn
from fastapi.testclient import TestClient

from seglab.cli import main
from seglab.serving.app import create_app
from seglab.serving.batching import BatchingQueue, QueueFull
from seglab.serving.limits import ClientLimitsMiddleware
from seglab.serving.models import public
from seglab.serving.server import limits_line, listen
from seglab.serving.upload import UploadError, decode_image, megapixels, quote
from tests.serving.conftest import gated, png_bytes
from tests.serving.test_app import upload, wait_until

# --- memory: pixels times batch -------------------------------------------------------------


def test_a_batch_holds_no_more_pixels_than_its_budget():
    """Same-size requests join a batch only while the batch stays within its pixel budget; an
    image over the budget runs alone; the waiting images' pixels are bounded too."""
    ran = []
    queue = BatchingQueue(
        lambda model, items: ran.append(list(items)) or items,
        size=16,
        batch=4,
        budget=100,
        waiting_budget=250,
    )

    async def scenario():
        futures = [queue.submit("m", "k", name, cost) for name, cost in [("a", 40), ("b", 40)]]
        futures += [queue.submit("m", "k", "c", 40)]
        with pytest.raises(QueueFull):  # 120 waiting: 140 more would pass 250
            queue.submit("m", "k", "d", 140)
        assert queue.waiting_cost == 120
        queue.start()
        await asyncio.gather(*futures)
        alone = queue.submit("m", "k", "big", 400)  # over both budgets, into an empty queue
        await alone
        queue.stop()

    asyncio.run(scenario())
    assert ran == [["a", "b"], ["c"], ["big"]]  # a+b+c would be 120 > 100
    assert queue.waiting_cost == 0


def test_concurrent_uploads_are_batched_only_within_the_pixel_budget():
    """Three waiting 48x40 images with a budget of two such images: a batch of two, then one
    (where a batch of three ran before)."""
    model = gated(open_=False)
    segmenter = model.segmenter
    app = create_app([model], queue_size=8, batch=4, batch_pixels=2 * 48 * 40)
    with TestClient(app) as client:
        answers = []

        def send(height):
            answers.append(client.post("/predict", files=upload(png_bytes(height, 40))))

        threads = [threading.Thread(target=send, args=(h,)) for h in (32, 48, 48, 48)]
        threads[0].start()
        assert segmenter.entered.wait(10)
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: app.state.queue.waiting == 3)
        assert app.state.queue.waiting_cost == 3 * 48 * 40
        segmenter.gate.set()
        for thread in threads:
            thread.join(10)
    assert segmenter.batches == [1, 2, 1]
    assert all(a.status_code == 200 for a in answers)
    assert client.app.state.queue.waiting_cost == 0


def png_header(width: int, height: int) -> bytes:
    """A PNG of a header chunk and an end, no pixels: the size of a huge image in 45 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_an_image_over_the_pixel_limit_is_refused_from_its_header_in_megapixels():
    """50000x50000 is far over Pillow's own limit too: its size still comes from the header,
    nothing is decoded (the file holds no pixels: decoding would be a 400)."""
    with pytest.raises(UploadError) as refused:
        decode_image(png_header(50000, 50000), channels=3, max_pixels=16_000_000)
    assert refused.value.status == 413
    assert refused.value.message == (
        "the image is 2500 megapixels (50000x50000); the limit is 16 megapixels"
    )
    with pytest.raises(UploadError) as just_over:
        decode_image(png_header(4001, 4000), channels=3, max_pixels=16_000_000)
    assert "is 16.004 megapixels (4001x4000); the limit is 16 megapixels" in str(just_over.value)
    assert megapixels(4000 * 3999) == "16" and megapixels(300_000) == "0.3"
    assert megapixels(45_000) == "0.045"


# --- echoing no input, keeping the machine to itself --------------------------------------------


def test_errors_name_what_was_wrong_without_quoting_the_input():
    with TestClient(create_app([gated()])) as client:
        huge = "x" * 1_000_000
        form = client.post("/predict", files=upload(png_bytes()), data={"model": huge})
        assert form.status_code == 404 and len(form.content) < 200
        assert form.json()["detail"] == (
            f"no model {'x' * 32!r}… (1000000 characters) is served; served: gated"
        )
        control = client.post("/predict?model=a%0a%1b[31mb", files=upload(png_bytes()))
        assert control.json()["detail"].startswith("no model 'a\\n\\x1b[31mb' is served")
        bad_format = client.post(f"/predict?format={'y' * 5000}", files=upload(png_bytes()))
        assert bad_format.status_code == 400 and len(bad_format.content) < 200
    assert quote("short") == "'short'"


def test_cards_keep_their_figures_but_not_paths_or_the_machine():
    card = {
        "format": "onnx",
        "source": {"checkpoint": "/home/alice/runs/a/best.pt", "sha256": "ab12", "step": 90},
        "calibration": {"data": "/data/secret.yaml", "split": "train", "images": 8},
        "measured": {"data": "syn.yaml", "miou": 0.6, "machine": {"cpu": "Xeon", "host": "n1"}},
        "notes": ["C:\\Users\\bob\\model.onnx", "/srv/x", "fine"],
    }
    assert public(card) == {
        "format": "onnx",
        "source": {"sha256": "ab12", "step": 90},
        "calibration": {"split": "train", "images": 8},
        "measured": {"miou": 0.6},
        "notes": ["(withheld)", "(withheld)", "fine"],
    }
    for details, leaks in ((False, False), (True, True)):
        app = create_app([gated("int8", card=card)], expose_details=details)
        with TestClient(app) as client:
            listing = client.get("/models").text
        assert ("/home/alice" in listing) is leaks and ("Xeon" in listing) is leaks


# --- body timeout, per-client limit, disconnects: a real uvicorn ----------------------------


class Uvicorn:
    """``create_app(**options)`` served by uvicorn in a thread on a free port, its log captured
    by pytest's caplog (uvicorn configures no logging here)."""

    def __init__(self, **options):
        self.model = gated(open_=False)
        self.app = create_app([self.model], **options)
        self.sock = listen("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, lifespan="on", limit_concurrency=64)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self):
        self.thread.start()
        wait_until(lambda: self.server.started)
        return self

    def __exit__(self, *exc):
        self.model.segmenter.gate.set()
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def stalled_upload(self, sent: bytes = b"\x89PNG") -> socket.socket:
        """A connection whose upload announces 100000 bytes and sends ``sent``."""
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        conn.sendall(f"{head}Content-Length: 100000\r\n\r\n".encode() + sent)
        return conn

    def get(self, path: str) -> tuple[int, dict]:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        with conn:
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return answer(conn)


def in_progress(app) -> int:
    """Requests the app's ClientLimitsMiddleware counts as in progress."""
    layer = app.middleware_stack
    while not isinstance(layer, ClientLimitsMiddleware):
        layer = layer.app
    return sum(layer.in_progress.values())


def answer(conn: socket.socket) -> tuple[int, dict]:
    """(status, JSON body) of the response on ``conn``, read until the server closes it."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_stalled_upload_is_answered_408_and_its_connection_closed(caplog):
    caplog.set_level(logging.INFO)
    with Uvicorn(body_timeout=0.2) as server:
        start = time.monotonic()
        with server.stalled_upload() as conn:
            status, body = answer(conn)  # returns only once the server closes the connection
        assert time.monotonic() - start < 5
        assert status == 408
        assert body["detail"] == "the request's body did not arrive within 0.2 s"
        assert server.get("/health")[0] == 200
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "uvicorn.error" and "408" in r.getMessage()
    ]
    assert lines == ["client 127.0.0.1: the body of POST /predict did not arrive within 0.2 s; "
                     "answered 408"]  # fmt: skip


def test_one_client_cannot_take_every_slot(caplog):
    """Two requests in progress for one address: the third is a 429 at once; once the stalled
    ones are answered (408) the client is served again."""
    with Uvicorn(body_timeout=1.0, per_client=2) as server:
        stalled = [server.stalled_upload(), server.stalled_upload()]
        wait_until(lambda: in_progress(server.app) == 2)
        status, body = server.get("/health")
        assert status == 429 and "at most 2 may be in progress" in body["detail"]
        for conn in stalled:
            with conn:
                assert answer(conn)[0] == 408
        assert server.get("/health")[0] == 200


def test_a_keep_alive_clients_next_request_finds_its_slot_free():
    """The slot is given back when the answer is complete, not when the app's coroutine
    returns: a keep-alive client's next request may arrive in between (a 429 storm before)."""

    async def run() -> list[int]:
        answered, finish = asyncio.Event(), asyncio.Event()

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            answered.set()
            if scope["path"] == "/first":
                await finish.wait()  # still running after its answer went out

        limits = ClientLimitsMiddleware(app, per_client=1)
        statuses: list[int] = []

        async def request(path: str) -> None:
            scope = {"type": "http", "method": "GET", "path": path, "client": ("10.0.0.1", 1)}

            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            await limits(scope, receive, send)

        first = asyncio.create_task(request("/first"))
        await answered.wait()
        await request("/second")  # the same client, before the first coroutine returned
        finish.set()
        await first
        assert not limits.in_progress  # every slot given back exactly once
        return statuses

    assert asyncio.run(run()) == [200, 200]


def test_a_client_that_goes_away_is_one_line_in_the_log(caplog):
    caplog.set_level(logging.INFO)
    with Uvicorn(body_timeout=30) as server:
        conn = server.stalled_upload()
        wait_until(lambda: in_progress(server.app) == 1)
        conn.close()
        wait_until(lambda: not in_progress(server.app))
        assert server.get("/health")[0] == 200
    assert [r.getMessage() for r in caplog.records if "went away" in r.getMessage()] == [
        "client 127.0.0.1 went away while sending POST /predict"
    ]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


# --- what the operator is told ------------------------------------------------------------


def test_the_memory_bound_is_in_the_help_and_the_startup_line():
    result = subprocess.run(
        [sys.executable, "-m", "seglab", "serve", "--help"], capture_output=True, text=True
    )
    help_text = " ".join(result.stdout.split())
    for words in ("--batch-megapixels", "--body-timeout", "--per-client", "--expose-details",
                  "Memory is bounded by pixels, not by requests"):  # fmt: skip
        assert words in help_text
    line = limits_line(16, 16, 4, 4, 32, 8, 60)
    assert "so inference holds at most 16 megapixels" in line
    assert "up to 32 requests and 64 megapixels of decoded images wait" in line
    assert "8 requests at once (429 beyond), each body within 60 s (408)" in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--per-client", "0"], "--per-client 0 must be at least 1"),
        (["--body-timeout", "0"], "--body-timeout 0.0 must be a positive number"),
        (["--batch-megapixels", "-1"], "--batch-megapixels -1.0 must be a positive number"),
    ],
)
def test_bad_limits_are_one_line(capsys, flags, message):
    assert main(["serve", "runs/x/best.pt", *flags]) == 2
    assert capsys.readouterr().err.strip() == f"seglab: error: serve: {message}"
