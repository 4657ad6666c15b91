"""From a request body to an image, in memory only: a multipart form (the image in a field
``image`` or ``file``, or the first file) or the raw image bytes, then decoded as
``seglab predict`` decodes files. Every problem is an :class:`UploadError` with the HTTP status
it deserves and a message for the client. Nothing here touches the file system: the client's
file name is never used."""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO

import torch
from PIL import Image
from python_multipart.multipart import (
    MultipartParseError,
    MultipartParser,
    MultipartState,
    parse_options_header,
)

from seglab.data.io import read_image, tiff_size
from seglab.deployment.predict import match_channels
from seglab.errors import SeglabError, first_line

# The formats the server decodes, by the bytes they start with (what the client says the type is
# does not count): (prefix, offset of a second marker, second marker, name).
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", 0, b"", "PNG"),
    (b"\xff\xd8\xff", 0, b"", "JPEG"),
    (b"BM", 0, b"", "BMP"),
    (b"II*\x00", 0, b"", "TIFF"),
    (b"MM\x00*", 0, b"", "TIFF"),
    (b"GIF87a", 0, b"", "GIF"),
    (b"GIF89a", 0, b"", "GIF"),
    (b"RIFF", 8, b"WEBP", "WEBP"),
)
FORMAT_NAMES = "PNG, JPEG, BMP, TIFF, WebP or GIF"
IMAGE_FIELDS = ("image", "file")


class UploadError(Exception):
    """A request the server refuses: ``status`` (400, 413, 415) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Part:
    """One part of a multipart form."""

    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)

    def disposition(self) -> dict[str, str]:
        _, params = parse_options_header(self.headers.get("content-disposition", ""))
        return {k.decode("latin-1"): v.decode("utf-8", "replace") for k, v in params.items()}


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart/form-data body, held in memory."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart upload without a boundary in its Content-Type")
    parts: list[Part] = []
    name, value = bytearray(), bytearray()

    def header_end() -> None:
        parts[-1].headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        name.clear()
        value.clear()

    callbacks = {
        "on_part_begin": lambda: parts.append(Part()),
        "on_header_field": lambda data, start, end: name.extend(data[start:end]),
        "on_header_value": lambda data, start, end: value.extend(data[start:end]),
        "on_header_end": header_end,
        "on_part_data": lambda data, start, end: parts[-1].data.extend(data[start:end]),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as err:
        raise UploadError(400, f"malformed multipart upload ({short(first_line(err))})") from None
    if parser.state != MultipartState.END:
        raise UploadError(400, "malformed multipart upload (it ends before its closing boundary)")
    return parts


def read_upload(body: bytes, content_type: str) -> tuple[bytes, str | None]:
    """(the image's bytes, the form's ``model`` field or None) from a request body: a multipart
    form, or the image itself as the body."""
    if not content_type.lower().startswith("multipart/form-data"):
        return body, None
    parts = parse_multipart(body, content_type)
    fields = {p.disposition().get("name"): p for p in parts}
    model = fields.get("model")
    image = next((fields[f] for f in IMAGE_FIELDS if f in fields), None)
    image = image or next((p for p in parts if "filename" in p.disposition()), None)
    if image is None:
        raise UploadError(400, "no image in the form: send the image file in a field named 'image'")
    return bytes(image.data), model.data.decode("utf-8", "replace").strip() if model else None


def image_format(data: bytes) -> str | None:
    """The format the bytes start like, or None when they look like no image the server reads."""
    for prefix, offset, marker, name in SIGNATURES:
        if data.startswith(prefix) and data[offset : offset + len(marker)] == marker:
            return name
    return None


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the image's header alone, nothing decoded: 400 when the
    upload is empty or its header damaged, 415 when the bytes are no image."""
    if not data:
        raise UploadError(400, "the upload is empty: send an image file")
    kind = image_format(data)
    if kind is None:
        raise UploadError(415, f"the upload is not an image: send a {FORMAT_NAMES} file")
    try:
        width, height = _header_size(data, kind)
    except Exception as err:  # a damaged header: whatever the decoder raises
        raise UploadError(400, f"damaged {kind} image ({short(first_line(err))})") from None
    return kind, width, height


def check_size(width: int, height: int, max_pixels: int) -> None:
    """413 when a ``width`` x ``height`` image is over ``max_pixels``."""
    if width * height > max_pixels:
        limit = megapixels(max_pixels)
        size = megapixels(width * height, unlike=limit)
        raise UploadError(
            413,
            f"the image is {size} megapixels ({width}x{height}); the limit is {limit} megapixels",
        )


def decode_image(data: bytes, channels: int, max_pixels: int) -> torch.Tensor:
    """C x H x W (uint8, or float in [0, 1] for 16-bit images) for a model of ``channels``
    input channels. 415 when the bytes are no image, 413 over ``max_pixels`` (checked from the
    header, before decoding), 400 when the image is truncated or damaged."""
    kind, width, height = image_size(data)
    check_size(width, height, max_pixels)
    return decode_checked(data, kind, channels)


def decode_checked(data: bytes, kind: str, channels: int) -> torch.Tensor:
    """The image whose header :func:`image_size` read as ``kind``, decoded for a model of
    ``channels`` input channels: one copy of its pixels in memory beside the decoder's, no float
    copy of 8-bit images. 400 when it cannot be decoded."""
    try:
        image = read_image(BytesIO(data), channels, name=f"the {kind} image")
    except SeglabError as err:  # bands the model cannot take, a TIFF of no bands seglab knows
        raise UploadError(400, short(str(err), 300)) from None
    except Exception as err:  # truncated or corrupted data: whatever the decoder raises
        raise UploadError(
            400,
            f"cannot decode the {kind} image, is it truncated or damaged? "
            f"({short(first_line(err))})",
        ) from None
    return match_channels(image, channels)


def _header_size(data: bytes, kind: str) -> tuple[int, int]:
    """(width, height) from the image's header, before anything is decoded. TIFFs through
    tifffile, which reads the multi-band ones Pillow cannot open; the rest through Pillow's
    reader for ``kind`` called directly, so that an image over Pillow's own pixel limit (which
    ``Image.open`` refuses without saying its size) still tells its size."""
    if kind == "TIFF":
        return tiff_size(BytesIO(data))
    Image.init()
    factory, _ = Image.OPEN[kind]
    im = factory(BytesIO(data))
    try:
        return im.size
    finally:
        im.close()


def megapixels(pixels: int, unlike: str = "") -> str:
    """``pixels`` in megapixels as a person writes them (2500, 0.3, 15.9), with more digits
    where the short form would read as ``unlike`` (an image just over the limit)."""
    value = pixels / 1e6
    text = f"{value:.1f}".removesuffix(".0") if value >= 0.1 else f"{value:.2g}"
    if text == unlike:
        text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text


def short(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters (a decoder's message may quote the input)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str, limit: int = 32) -> str:
    """A client's ``text`` as an error message may show it: at most ``limit`` characters,
    escaped (repr), and how long it was when it is longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"
