"""The HTTP application: POST /predict, GET /models, GET /health, and the page at / with its
script and style sheet (package data, read once; no request names a file)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from io import BytesIO
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders

from seglab.data.info import DatasetInfo
from seglab.deployment.predict import palette_png
from seglab.errors import first_line
from seglab.serving.batching import BatchingQueue, QueueFull, Result
from seglab.serving.limits import ClientLimitsMiddleware
from seglab.serving.models import ServedModel, segment
from seglab.serving.upload import (
    UploadError,
    check_size,
    decode_checked,
    image_size,
    quote,
    read_upload,
    short,
)

MB = 1024 * 1024
DECODE_SLOTS = 2  # images decoded at once: each holds its pixels several times while it decodes
STATIC = {  # URL path -> (package file, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
# The page loads nothing from elsewhere; masks and photos are shown from blob: URLs.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "application/json": {}}},
    400: {"description": "a damaged or truncated image, or a malformed request"},
    404: {"description": "no model of that name is served"},
    413: {"description": "the upload or the image is over the limit"},
    415: {"description": "the upload is not an image"},
    408: {"description": "the upload did not arrive within the body timeout"},
    429: {"description": "this client has too many requests in progress"},
    503: {"description": "the queue is full; retry after Retry-After seconds"},
}


def create_app(
    models: Sequence[ServedModel],
    *,
    max_upload: int = 16 * MB,
    max_pixels: int = 16_000_000,
    queue_size: int = 32,
    batch: int = 4,
    batch_pixels: int = 4_000_000,
    body_timeout: float = 60.0,
    per_client: int = 8,
    expose_details: bool = False,
) -> FastAPI:
    """The application serving ``models`` (the first is the default): uploads up to
    ``max_upload`` bytes and ``max_pixels`` pixels, at most ``queue_size`` requests (and
    :func:`waiting_pixels` pixels) waiting for inference, up to ``batch`` same-size requests for
    one model run together while they hold at most ``batch_pixels`` pixels in all (a larger
    image runs alone: inference holds at most max(``max_pixels``, ``batch_pixels``) at once).
    Each body must arrive within ``body_timeout`` seconds (408), each client may have
    ``per_client`` requests in progress (429), and GET /models names files and machines only
    with ``expose_details``."""
    service = SegmentationService(
        models, max_upload, max_pixels, queue_size, batch, batch_pixels, expose_details
    )
    pages = _read_pages()
    app = FastAPI(
        title="seglab serve",
        summary="Semantic segmentation with seglab models",
        lifespan=_running(service.queue),
        docs_url=None,  # the interactive docs load scripts from a CDN; the page loads nothing
        redoc_url=None,
    )
    app.state.queue = service.queue
    app.add_middleware(ClientLimitsMiddleware, per_client=per_client, body_timeout=body_timeout)
    app.add_middleware(SecurityHeadersMiddleware)  # the outer one: on the 408 and 429 too

    # Thin routes: their names, signatures and docstrings are the API's schema.
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return service.health()

    @app.get("/models")
    async def list_models() -> dict[str, Any]:
        return service.listing()

    @app.post("/predict", responses=PREDICT_RESPONSES)
    async def predict(request: Request, model: str | None = None, format: str | None = None):
        """The mask of the uploaded image (multipart field ``image``, or the raw image as the
        body) as a palette PNG of the image's size, or as JSON with ``format=json`` or
        ``Accept: application/json``: the class shares, latency and model."""
        return await service.predict(request, model, format)

    for path, (content, media) in pages.items():
        app.add_api_route(path, _page(content, media), methods=["GET"], include_in_schema=False)
    return app


class SegmentationService:
    """What the routes share: the served models by name (the first the default), the upload
    limits and the queue in front of inference."""

    def __init__(
        self,
        models: Sequence[ServedModel],
        max_upload: int,
        max_pixels: int,
        queue_size: int,
        batch: int,
        batch_pixels: int,
        expose_details: bool = False,
    ):
        if not models:
            raise ValueError("create_app needs at least one model")
        self.models = list(models)
        self.served = {m.name: m for m in models}
        if len(self.served) != len(models):
            raise ValueError("model names must be unique")
        self.default = models[0].name
        self.max_upload, self.max_pixels = max_upload, max_pixels
        self.expose_details = expose_details
        self.queue = BatchingQueue(
            self._run_batch,
            size=queue_size,
            batch=batch,
            budget=batch_pixels,
            waiting_budget=waiting_pixels(max_pixels, batch_pixels),
        )
        self._decoding: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _run_batch(self, name: str, images: Sequence[Any]) -> np.ndarray:
        return segment(self.served[name].segmenter, images)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "models": list(self.served),
            "queue": {"waiting": self.queue.waiting, "capacity": self.queue.size},
            "batch": self.queue.batch,
        }

    def listing(self) -> dict[str, Any]:
        return {
            "models": [m.describe(self.expose_details) for m in self.models],
            "default": self.default,
            "max_upload_bytes": self.max_upload,
            "max_pixels": self.max_pixels,
            "max_batch_pixels": self.queue.budget,
        }

    async def predict(self, request: Request, model: str | None, format: str | None) -> Response:
        """The upload read and decoded, segmented through the queue, encoded as asked."""
        as_json = _wants_json(format, request.headers.get("accept", ""))
        if model is not None:  # a wrong name refused before the upload is read
            _check_model(model, self.served)
        name, image, start = await self._read_image(request, model)
        result = await self._segment(name, image)
        return await _response(name, self.served[name].segmenter.info, result, start, as_json)

    async def _read_image(
        self, request: Request, model: str | None
    ) -> tuple[str, np.ndarray, float]:
        """The model to run (the query's, the form's or the default), the decoded image and
        when decoding began (the latency reported counts from there). Only the image outlives
        this call: the upload's bytes are freed before the request waits in the queue. The size
        is checked from the header before anything is decoded, and at most
        :data:`DECODE_SLOTS` images decode at once."""
        body = await _read_body(request, self.max_upload)
        try:
            data, form_model = read_upload(body, request.headers.get("content-type", ""))
            del body  # the image's bytes are a part of it or the body itself
            name = model or form_model or self.default
            _check_model(name, self.served)
            info = self.served[name].segmenter.info
            start = time.perf_counter()
            kind, width, height = image_size(data)
            check_size(width, height, self.max_pixels)
            async with self._decode_slots():
                image = await run_in_threadpool(decode_checked, data, kind, info.in_channels)
        except UploadError as err:
            raise HTTPException(err.status, err.message) from None
        return name, image, start

    def _decode_slots(self) -> asyncio.Semaphore:
        """The semaphore bounding decodes, made for the running event loop."""
        loop = asyncio.get_running_loop()
        if self._decoding is None or self._decoding[0] is not loop:
            self._decoding = (loop, asyncio.Semaphore(DECODE_SLOTS))
        return self._decoding[1]

    async def _segment(self, name: str, image: np.ndarray) -> Result:
        """``image`` segmented by model ``name`` in a batch of same-size images: 503 with
        Retry-After when the queue is full, 500 when the model fails on it."""
        try:
            pixels = image.shape[-2] * image.shape[-1]
            future = self.queue.submit(name, (tuple(image.shape), image.dtype), image, pixels)
        except QueueFull:
            seconds = self.queue.retry_after()
            waiting = f"{self.queue.waiting_cost / 1e6:.1f}".removesuffix(".0")
            raise HTTPException(
                503,
                f"the server is busy ({self.queue.waiting} requests, {waiting} megapixels "
                f"waiting); retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            ) from None
        try:
            return await future
        except asyncio.CancelledError:  # the request was cancelled: its image need not run
            future.cancel()
            raise
        except Exception as err:  # the model itself failed on this image
            raise HTTPException(500, f"model {name} failed: {short(first_line(err))}") from None


async def _response(
    name: str, info: DatasetInfo, result: Result, start: float, as_json: bool
) -> Response:
    """The mask as a palette PNG or as JSON, with the same headers either way."""
    classes = result.value
    # off the event loop: the class count and the PNG take a few ms of a large mask
    shares, png = await run_in_threadpool(_shares_and_png, classes, info, not as_json)
    latency = (time.perf_counter() - start) * 1000
    headers = {
        "X-Model": name,
        "X-Latency-Ms": f"{latency:.1f}",
        "X-Inference-Ms": f"{result.seconds * 1000:.1f}",
        "X-Batch-Size": str(result.batch),
        "X-Class-Shares": ",".join(f"{s:.4f}" for s in shares),
        "Cache-Control": "no-store",
    }
    if png is not None:
        return Response(png, media_type="image/png", headers=headers)
    height, width = classes.shape
    payload = {
        "model": name,
        "width": width,
        "height": height,
        "latency_ms": round(latency, 1),
        "inference_ms": round(result.seconds * 1000, 1),
        "batch": result.batch,
        "classes": [
            {"index": k, "name": label, "color": list(color), "share": round(float(s), 6)}
            for k, (label, color, s) in enumerate(zip(info.classes, info.colors, shares))
        ],
    }
    return JSONResponse(payload, headers=headers)


def _running(queue: BatchingQueue):
    """The app's lifespan: the queue's worker runs while the app does."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        queue.start()
        try:
            yield
        finally:
            queue.stop()

    return lifespan


def _read_pages() -> dict[str, tuple[bytes, str]]:
    """URL path -> (content, media type) of each file of :data:`STATIC`, read once."""
    static = files("seglab.serving").joinpath("static")
    return {
        path: (static.joinpath(name).read_bytes(), media) for path, (name, media) in STATIC.items()
    }


def _page(content: bytes, media: str):
    async def serve_file() -> Response:
        return Response(content, media_type=media)

    return serve_file


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def _wants_json(format: str | None, accept: str) -> bool:
    if format is None:
        return "application/json" in accept and "image/png" not in accept
    if format.lower() not in ("png", "json"):
        raise HTTPException(400, f"format={quote(format)}: use png (the default) or json")
    return format.lower() == "json"


def _check_model(name: str, served: dict[str, ServedModel]) -> None:
    if name not in served:
        raise HTTPException(404, f"no model {quote(name)} is served; served: {', '.join(served)}")


def waiting_pixels(max_pixels: int, batch_pixels: int) -> int:
    """The most pixels of decoded images that may wait for inference at once: four of the
    largest batches (or images)."""
    return 4 * max(max_pixels, batch_pixels)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit``: from its
    Content-Length, or while it arrives (a client may send more than it announced, or no
    length at all)."""
    too_large = f"the upload is over the limit of {limit / MB:g} MB"
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise HTTPException(413, too_large)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, too_large)
    return bytes(body)  # immutable: BytesIO shares it rather than copying


def _class_shares(classes: np.ndarray, info) -> np.ndarray:
    counts = np.bincount(classes.ravel(), minlength=info.num_classes)[: info.num_classes]
    return counts / max(classes.size, 1)


def _shares_and_png(
    classes: np.ndarray, info: DatasetInfo, png: bool
) -> tuple[np.ndarray, bytes | None]:
    return _class_shares(classes, info), _png(classes, info) if png else None


def _png(classes: np.ndarray, info) -> bytes:
    buffer = BytesIO()
    palette_png(classes, info).save(buffer, format="PNG")
    return buffer.getvalue()
