"""Decoding images and masks from disk. Images: TIFF with tifffile (any number of bands; 8, 16 or
32 bits; integer or float), everything else (PNG, JPEG, BMP, and the TIFFs tifffile leaves to it)
with Pillow.

An image is C x H x W holding every band the file stores (alpha dropped): uint8 for 8-bit files,
float32 for the rest. Integers are divided by their type's largest value (a 16-bit file's 0-65535
becomes [0, 1] with no precision lost; 12-bit data in a 16-bit file stays in [0, 0.0625]), floats
are taken as stored (NaN and infinities read as 0). Where the values sit within that range is the
business of the per-band statistics the data check measures, not of the reader: a file reads the
same in any dataset, so predict and serve read an image exactly as training did.

Files Pillow reads are turned as their EXIF Orientation tag says (a phone's photo stands as every
viewer shows it, and its mask is drawn on it so), masks as well as images: everything reads
through :func:`upright`, so training, the data check, predict and serve agree. TIFFs that
tifffile reads are taken as stored: tifffile does not apply the tag, and the multi-band and 16-bit
TIFFs it reads (scientific and remote-sensing data) seldom set it.

An image stored as one file per band (a :class:`BandStack`: Sentinel-2's ``tile_B02.tif``,
``tile_B03.tif``, ...) reads as the multi-band file of the same data would: each file's bands in
the declared order, all of one size and one type (anything else is a :class:`StackProblem`)."""

from __future__ import annotations

import os
import stat as stat_module
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile
import torch
from PIL import Image, ImageOps

from seglab.errors import SeglabError, first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
TIFF_ALPHA = (1, 2)  # ExtraSamples values of associated and unassociated alpha
# Axes (tifffile's names) that hold an image's bands: samples, channels, or a stack of pages
BAND_AXES = "SCIQ"
ORIENTATION_TAG = 0x0112  # EXIF Orientation: how the stored pixels are turned to be shown
# What each Orientation value does to the stored pixels (rotations clockwise), as messages say it
ORIENTATIONS = {
    2: "mirrored",
    3: "rotated 180°",
    4: "mirrored and rotated 180°",
    5: "mirrored and rotated 270°",
    6: "rotated 90°",
    7: "mirrored and rotated 90°",
    8: "rotated 270°",
}

ImageSource = str | Path | BinaryIO


class StackProblem(SeglabError):
    """A band stack whose files do not make one image: a band missing, or bands of different
    sizes, types or orientations. The data check reports it as such, not as an unreadable file."""


class BandStack(type(Path())):
    """One image stored as one file per band. The path names the sample, not a file: the folder
    of its images and its stem (``images/train/tile_001`` for ``images/train/tile_001_B02.tif``,
    ..., or for ``images/train/B02/tile_001.tif``, ...), so that it pairs with its mask, names
    its outputs and shows in messages as any image does. ``band_files`` holds each band's name
    and file in channel order (None: the band's file is missing). Make one with
    :func:`band_stack`; paths derived from it (``parent``, ``resolve()``) hold no bands."""

    band_files: tuple[tuple[str, Path | None], ...] = ()

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.band_files)

    @property
    def files(self) -> list[Path]:
        """The band files there are, in channel order."""
        return [path for _, path in self.band_files if path is not None]

    @property
    def missing(self) -> list[str]:
        """The bands whose file is missing."""
        return [name for name, path in self.band_files if path is None]

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """The stack as one file: its bands' bytes summed, the newest modification time (what a
        fingerprint of a dataset's files counts). A path derived from a stack is a plain one."""
        if not self.band_files:
            return super().stat(follow_symlinks=follow_symlinks)
        stats = [os.stat(path, follow_symlinks=follow_symlinks) for path in self.files]
        if not stats:
            raise FileNotFoundError(f"{self}: none of its band files is there")
        newest = max(stats, key=lambda s: s.st_mtime_ns)
        size = sum(s.st_size for s in stats)
        mode = stat_module.S_IFREG | stat_module.S_IMODE(newest.st_mode)
        fields = (mode, 0, 0, 1, newest.st_uid, newest.st_gid, size)
        times = ("st_atime", "st_mtime", "st_ctime")
        seconds = tuple(int(getattr(newest, t)) for t in times)
        exact = {t: getattr(newest, t) for t in times}
        exact |= {f"{t}_ns": getattr(newest, f"{t}_ns") for t in times}
        return os.stat_result(fields + seconds, exact)

    def __reduce__(self):  # a stack sent to a DataLoader worker keeps its bands
        return band_stack, (str(self), self.band_files)


def band_stack(path: str | Path, band_files) -> BandStack:
    """The :class:`BandStack` of sample ``path`` (its folder and stem) whose bands are
    ``band_files``: (name, file or None) pairs, or a mapping of them, in channel order."""
    pairs = band_files.items() if hasattr(band_files, "items") else band_files
    stack = BandStack(path)
    stack.band_files = tuple((str(name), None if f is None else Path(f)) for name, f in pairs)
    return stack


def read_image(source: ImageSource, channels: int | None = None, name: str = "") -> torch.Tensor:
    """C x H x W, uint8 for 8-bit files and float32 otherwise (see the module's docstring), of a
    file or a :class:`BandStack`; with ``channels``, fitted to them by :func:`fit_bands`. A
    SeglabError (a TIFF of no bands seglab knows, bands that do not fit, a stack's bands that do
    not make one image) names ``name``, by default the file."""
    name = name or str(source)
    try:
        image = bands_tensor(decode_image(source))
    except SeglabError as err:
        raise SeglabError(f"{name}: {err}") from None
    return image if channels is None else fit_bands(image, channels, name)


def image_tensor(im: Image.Image, channels: int) -> torch.Tensor:
    """A Pillow image as :func:`read_image` gives a file of it (its EXIF orientation applied)."""
    return fit_bands(bands_tensor(pillow_bands(upright(im))), channels, "the image")


def decode_image(source: ImageSource) -> np.ndarray:
    """C x H x W in the file's own type (uint8, uint16, float32, ...): every band, alpha dropped,
    turned as its EXIF orientation says."""
    return decode_oriented(source)[0]


def decode_oriented(source: ImageSource) -> tuple[np.ndarray, int]:
    """:func:`decode_image`'s bands and the EXIF orientation applied to them (1: none), which the
    data check needs to tell a mask drawn on the stored pixels."""
    if isinstance(source, BandStack):
        return decode_stack(source)
    if is_tiff(source):
        return _decode_tiff(source), 1
    with Image.open(source) as im:
        turn = orientation(im)
        return pillow_bands(upright(im, turn)), turn


def decode_stack(stack: BandStack) -> tuple[np.ndarray, int]:
    """The stack's bands, each file's in the declared order, as C x H x W in the files' one type,
    and their EXIF orientation. A StackProblem where a band is missing, or the files differ in
    size, type or orientation; a band file that fails to decode is named in the error."""
    if stack.missing:
        missing = ", ".join(stack.missing)
        expected = ", ".join(stack.band_names)
        raise StackProblem(f"band {missing} missing (its bands: {expected})")
    decoded = []
    for name, path in stack.band_files:
        try:
            bands, turn = decode_oriented(path)
        except SeglabError as err:
            raise SeglabError(f"band {name} ({_band_file(path, stack)}): {err}") from None
        except Exception as err:
            message = f"band {name} ({_band_file(path, stack)}): {first_line(err)}"
            raise ValueError(message) from None
        decoded.append((name, bands, turn))
    _same("sizes", stack, [(n, "{}x{}".format(*b.shape[1:])) for n, b, _ in decoded])
    _same("bit depths", stack, [(n, bit_depth(b.dtype)) for n, b, _ in decoded])
    _same("EXIF orientations", stack, [(n, describe_orientation(t)) for n, _, t in decoded])
    return np.concatenate([b for _, b, _ in decoded]), decoded[0][2]


def _same(what: str, stack: BandStack, facts: list[tuple[str, str]]) -> None:
    """A StackProblem unless every band has the same fact: "bands of different sizes: B02, B03
    32x40; B08 16x20"."""
    by_fact: dict[str, list[str]] = {}
    for name, fact in facts:
        by_fact.setdefault(fact, []).append(name)
    if len(by_fact) > 1:
        shown = "; ".join(f"{', '.join(names)} {fact}" for fact, names in by_fact.items())
        raise StackProblem(f"bands of different {what}: {shown}")


def _band_file(path: Path, stack: BandStack) -> str:
    """A band's file as messages name it: relative to the stack's folder."""
    try:
        return path.relative_to(stack.parent).as_posix()
    except ValueError:
        return str(path)


def orientation(im: Image.Image) -> int:
    """The image's EXIF Orientation (1, as stored, when it has none or an unreadable one). The
    pixels are decoded first, outside the guard below: a PNG's EXIF may follow its pixel data,
    and a broken data stream must fail as such, not pass as "no EXIF"."""
    im.load()
    try:
        value = int(im.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block: viewers show such a file as stored, and so do we
        return 1
    return value if value in ORIENTATIONS else 1


def upright(im: Image.Image, turn: int | None = None) -> Image.Image:
    """``im`` as viewers show it: turned by Pillow's ``exif_transpose`` where its EXIF orientation
    (``turn``, read from it by default) asks; ``im`` itself otherwise (no copy)."""
    turn = orientation(im) if turn is None else turn
    return ImageOps.exif_transpose(im) if turn != 1 else im


def describe_orientation(turn: int) -> str:
    """An Orientation value as messages name it: "6, rotated 90°"."""
    return f"{turn}, {ORIENTATIONS.get(turn, 'as stored')}"


def is_tiff(source: ImageSource) -> bool:
    """Whether the file (or stream) starts as a TIFF does, whatever its name says."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return f.read(4) in TIFF_MAGIC
    start = source.tell()
    head = source.read(4)
    source.seek(start)
    return head in TIFF_MAGIC


def tiff_size(source: ImageSource) -> tuple[int, int]:
    """(width, height) of a TIFF's first image, from its header alone."""
    with tifffile.TiffFile(source) as tif:
        page = tif.pages[0]
        return int(page.imagewidth), int(page.imagelength)


def _decode_tiff(source: ImageSource) -> np.ndarray:
    """tifffile first, since Pillow reads neither more than 4 samples nor 16-bit colour; Pillow
    for what tifffile leaves to it (palette and bilevel images) or cannot decode without the
    imagecodecs package (LZW and JPEG compression)."""
    start = 0 if isinstance(source, (str, Path)) else source.tell()
    try:
        bands = _tiff_bands(source)
    except SeglabError:
        raise
    except Exception as err:  # a codec tifffile lacks, or a damaged file: Pillow may still read it
        return _pillow_instead(source, start, err)
    return bands if bands is not None else _pillow_instead(source, start, None)


def _pillow_instead(source: ImageSource, start: int, failure: Exception | None) -> np.ndarray:
    """The TIFF as Pillow reads it; where Pillow cannot either, tifffile's reason (``failure``),
    raised as a decoder failure, which every caller reports naming the file."""
    if not isinstance(source, (str, Path)):
        source.seek(start)
    try:
        with Image.open(source) as im:
            return pillow_bands(im)
    except Exception:
        if failure is None:
            raise
        hint = "; pip install imagecodecs" if "imagecodecs" in str(failure) else ""
        raise ValueError(f"{first_line(failure)}{hint}") from None


def _tiff_bands(source: ImageSource) -> np.ndarray | None:
    """C x H x W of a grey, RGB or multi-band TIFF (bands as samples of a pixel, as planes, or as
    pages of one size); None for the photometric kinds Pillow converts (palette, bilevel, YCbCr,
    CMYK, ...)."""
    with tifffile.TiffFile(source) as tif:
        page = tif.pages[0]
        grey_or_rgb = (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB)
        if page.photometric not in grey_or_rgb or page.bitspersample == 1:
            return None
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
        extras = tuple(int(e) for e in page.extrasamples)
        samples = page.samplesperpixel
    return _bands_first(array, axes, extras, samples)


def _bands_first(array: np.ndarray, axes: str, extras: tuple[int, ...], samples: int) -> np.ndarray:
    """The TIFF's array as C x H x W, its alpha samples dropped."""
    if axes == "YX":
        return array[None]
    others = axes.replace("Y", "").replace("X", "")
    if array.ndim != 3 or len(others) != 1 or others not in BAND_AXES:
        raise SeglabError(
            f"a TIFF of axes {axes} (shape {'x'.join(map(str, array.shape))}): seglab reads "
            "2-D images with bands (axes YX, YXS, SYX, CYX or a stack of pages QYX)"
        )
    array = np.moveaxis(array, axes.index(others), 0)
    if others == "S" and any(e in TIFF_ALPHA for e in extras):
        first_extra = samples - len(extras)
        keep = [
            i
            for i in range(samples)
            if i < first_extra or extras[i - first_extra] not in TIFF_ALPHA
        ]
        array = array[keep]
    return array


def pillow_bands(im: Image.Image) -> np.ndarray:
    """C x H x W of a Pillow image: 16-bit grey as uint16, float as float32, the rest as 8-bit grey
    or RGB (palette images in their colours, alpha dropped)."""
    mode = im.mode
    if mode in SIXTEEN_BIT_MODES:
        array = np.asarray(im).astype(np.uint16)
    elif mode == "I":  # how some Pillow versions hold a 16-bit PNG; 16 bits is what it had
        array = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    elif mode == "F":
        array = np.asarray(im, dtype=np.float32)
    else:
        array = np.asarray(im.convert("L" if mode in GREY_MODES else "RGB"))
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)


def bands_tensor(array: np.ndarray) -> torch.Tensor:
    """C x H x W as the model's input takes it: uint8 kept, other integers divided by their type's
    largest value, floats as they are (NaN and infinities 0), all float32."""
    if array.dtype == np.uint8:  # copied where it is a view of a decoder's read-only buffer
        return torch.from_numpy(np.require(array, requirements=("C", "W")))
    if array.dtype.kind in "ui":
        scaled = array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    else:
        scaled = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return torch.from_numpy(np.ascontiguousarray(scaled))


def value_scale(dtype: np.dtype | str) -> float:
    """The factor a stored value of ``dtype`` is taken with: 1 / the largest value for integers
    (8-bit ones included, once the model's input is float), 1 for floats."""
    dtype = np.dtype(dtype)
    return 1.0 / np.iinfo(dtype).max if dtype.kind in "ui" else 1.0


def bit_depth(dtype: np.dtype | str) -> str:
    """How a person names the type a file stores its values in: 8-bit, 16-bit, 32-bit float."""
    dtype = np.dtype(dtype)
    kind = {"f": " float", "i": " signed"}.get(dtype.kind, "")
    return f"{8 * dtype.itemsize}-bit{kind}"


def fits(bands: int, channels: int) -> bool:
    """Whether an image of ``bands`` can feed ``channels`` input channels: the same number, or a
    grey image for a colour model (repeated) and a colour one for a grey model (averaged)."""
    return bands == channels or {bands, channels} == {1, 3}


def fit_bands(image: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    """``image`` with ``channels`` bands (see :func:`fits`); any other mismatch is an error naming
    ``name``, since no band of one sensor stands in for another's."""
    bands = image.shape[0]
    if bands == channels:
        return image
    if not fits(bands, channels):
        raise SeglabError(f"{name}: a {bands}-band image where {channels}-band images are expected")
    if bands == 1:
        return image.expand(channels, -1, -1).contiguous()
    grey = image.float().mean(0, keepdim=True)
    return grey.round().to(torch.uint8) if image.dtype == torch.uint8 else grey


def read_raw_mask(path: Path) -> np.ndarray:
    """H x W int64 of the values the file stores: class indices or ids as they are (palette PNGs
    give their indices), and for colour masks the RGB colour packed as ``r << 16 | g << 8 | b``;
    turned as its EXIF orientation says, as its image is."""
    with Image.open(path) as im:
        return raw_mask_values(upright(im))


def is_colour_mask(im: Image.Image) -> bool:
    return im.mode in ("RGB", "RGBA")


def raw_mask_values(im: Image.Image) -> np.ndarray:
    if is_colour_mask(im):
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
        return rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    return np.asarray(im).astype(np.int64)


def pack_rgb(color: tuple[int, int, int] | list[int]) -> int:
    r, g, b = color
    return int(r) << 16 | int(g) << 8 | int(b)


def unpack_rgb(value: int) -> tuple[int, int, int]:
    return (value >> 16) & 255, (value >> 8) & 255, value & 255
