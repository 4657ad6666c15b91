"""Predicting on new images: for each input, a class-index PNG of the input's size with the class
palette embedded, a colour overlay, and optionally the class probabilities; for a video, the same
per frame and an overlay video beside them. Output locations are checked before any work, and an
output never replaces an input."""

from __future__ import annotations

import glob
import os
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from seglab.data.info import DatasetInfo
from seglab.data.io import IMAGE_SUFFIXES, bands_tensor, fit_bands, image_tensor, read_image
from seglab.data.show import overlay, overlay_panel, palette
from seglab.deployment.artifacts import load_segmenter, model_warnings
from seglab.engine.inference import predict_probabilities
from seglab.engine.segmenter import Segmenter
from seglab.errors import SeglabError, SeglabWarning, first_line
from seglab.outputs import check_output_folder

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
OUTPUT_SUFFIXES = (".png", "_overlay.png")  # per image (or video frame), always
PROBABILITIES_SUFFIX = "_probabilities.npy"  # with probabilities=True
VIDEO_OVERLAY_SUFFIX = "_overlay.mp4"  # per video: the overlaid frames at the video's rate
# One image as Python code holds it (see input_image).
ImageInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor
Key = TypeVar("Key")  # what names an image in a batch: its output name, its place in a list


@dataclass
class VideoOverlay:
    """A video predicted frame by frame: the overlay video written, its frames, and the seconds
    from opening the video to writing its last frame (reading, predicting and writing)."""

    source: Path
    path: Path
    frames: int
    seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass
class PredictSummary:
    """What :func:`predict` did: predictions written, each problem it reported (an input that
    matched nothing or could not be read), and the overlay video of each video."""

    written: int
    problems: list[str] = field(default_factory=list)
    videos: list[VideoOverlay] = field(default_factory=list)


def predict(
    model: str | os.PathLike,
    inputs: Sequence[str],
    out: str | os.PathLike,
    *,
    batch_size: int = 4,
    probabilities: bool = False,
    window: tuple[int, int] | None = None,
    flip: bool = False,
    device: str = "cpu",
    report: Callable[[str], None] = print,
    progress: bool = True,
) -> PredictSummary:
    """``seglab predict``: the inputs (files, folders, glob patterns) found, ``out`` checked
    (writable, no input overwritten: one-line SeglabError otherwise), then ``model`` (a
    checkpoint or an exported .onnx or .pte file) loaded and run on every readable input. A
    model known to be useless or undertrained is said so (a SeglabWarning each, before any
    prediction): its masks look like results but say nothing. Each problem with an input is
    passed to ``report`` as one line, and the rest are still written."""
    if batch_size < 1:
        raise SeglabError(f"predict: --batch-size {batch_size} must be at least 1")
    problems: list[str] = []

    def note(line: str) -> None:
        problems.append(line)
        report(line)

    paths = expand_inputs(inputs, note)
    check_predict_outputs(out, paths, probabilities)
    segmenter = load_segmenter(model, device)
    for line in model_warnings(model):
        warnings.warn(line, SeglabWarning, stacklevel=2)
    written, _, videos = predict_files(
        segmenter,
        paths,
        out,
        batch_size=batch_size,
        probabilities=probabilities,
        window=window,
        flip=flip,
        report=note,
        progress=progress,
    )
    return PredictSummary(written, problems, videos)


def expand_inputs(inputs: Sequence[str], report: Callable[[str], None] = print) -> list[Path]:
    """Files, folders (their images and videos, sorted) and glob patterns, each file once; what
    matches nothing is reported."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
            )
            if not found:
                report(f"{path}: no images in this folder")
            paths += found
        elif path.is_file():
            paths.append(path)
        elif any(c in item for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                report(f"{item}: no file matches this pattern")
            paths += found
        else:
            report(f"{path}: no such file or folder")
    unique = {p.resolve(): p for p in reversed(paths)}  # the first mention of each file
    return [p for p in paths if unique[p.resolve()] is p]


def output_names(path: Path, probabilities: bool = False) -> list[str]:
    """The files an image input ``path`` gives in the output folder."""
    suffixes = OUTPUT_SUFFIXES + ((PROBABILITIES_SUFFIX,) if probabilities else ())
    return [path.stem + suffix for suffix in suffixes]


def _video_outputs(path: Path) -> re.Pattern:
    """The files a video input gives in the output folder (one set per frame)."""
    suffixes = "|".join(re.escape(s) for s in (*OUTPUT_SUFFIXES, PROBABILITIES_SUFFIX))
    return re.compile(rf"{re.escape(path.stem)}_\d{{6}}({suffixes})")


def check_predict_outputs(
    out: str | os.PathLike, inputs: Sequence[Path], probabilities: bool = False
) -> Path:
    """Before any work: ``out`` is a folder that is or can be made writable, no output would
    replace an input, and no two inputs would write the same output. One-line SeglabError
    naming the file otherwise. Returns ``out`` as a Path."""
    out = check_output_folder(out, "predict: --out")
    inputs_at = {p.resolve(): p for p in inputs}
    writers: dict[str, Path] = {}
    images = [p for p in inputs if p.suffix.lower() not in VIDEO_SUFFIXES]
    for path in images:
        for name in output_names(path, probabilities):
            if (out / name).resolve() in inputs_at:
                raise SeglabError(
                    f"predict: output {out / name} would overwrite the input image; "
                    "choose another --out"
                )
            if name in writers:
                raise SeglabError(
                    f"predict: inputs {writers[name]} and {path} would both write {out / name}; "
                    "rename one or predict them into separate folders"
                )
            writers[name] = path
    # A video's frames give NAME_000000.png, ...: never an input (an input image there would
    # already be refused above, as its own output), but maybe another input's output.
    videos: dict[str, Path] = {}
    for video in (p for p in inputs if p.suffix.lower() in VIDEO_SUFFIXES):
        overlay_video = out / f"{video.stem}{VIDEO_OVERLAY_SUFFIX}"
        if overlay_video.resolve() in inputs_at:
            raise SeglabError(
                f"predict: output {overlay_video} would overwrite an input; choose another --out"
            )
        frames = _video_outputs(video)
        for name, path in writers.items():
            if frames.fullmatch(name):
                raise SeglabError(
                    f"predict: inputs {path} and {video} would both write {out / name}; "
                    "rename one or predict them into separate folders"
                )
        if video.stem in videos:
            raise SeglabError(
                f"predict: inputs {videos[video.stem]} and {video} would both write "
                f"{out / video.stem}_000000.png, ...; rename one or predict them into separate "
                "folders"
            )
        videos[video.stem] = video
    return out


def predict_files(
    segmenter: Segmenter,
    inputs: Iterable[Path],
    out: str | os.PathLike,
    *,
    batch_size: int = 4,
    probabilities: bool = False,
    window: tuple[int, int] | None = None,
    flip: bool = False,
    report: Callable[[str], None] = print,
    progress: bool = True,
) -> tuple[int, int, list[VideoOverlay]]:
    """Writes the outputs of every readable input into ``out`` (checked first, see
    :func:`check_predict_outputs`); images are batched by size, and each video's overlaid
    frames also go into NAME_overlay.mp4. Returns (written, unreadable, the overlay videos)."""
    paths = list(inputs)
    out = check_predict_outputs(out, paths, probabilities)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(desc="predict", unit="image", total=len(paths), disable=not progress)
    videos = OverlayVideos(out, segmenter.info, report)
    unreadable: list[str] = []

    def readable() -> Iterator[tuple[str, torch.Tensor]]:
        for name, image in _frames(paths, segmenter.info.in_channels, report, videos):
            if image is None:
                unreadable.append(name)
            else:
                yield name, image

    written = 0
    for group in same_size_batches(readable(), batch_size):
        written += _predict_batch(segmenter, group, out, probabilities, window, flip, videos)
        bar.update(len(group))
    bar.close()
    return written, len(unreadable), videos.close()


def same_size_batches(
    items: Iterable[tuple[Key, torch.Tensor]], batch_size: int
) -> Iterator[list[tuple[Key, torch.Tensor]]]:
    """The (key, image) ``items`` in batches of up to ``batch_size`` whose images share one shape
    and dtype: each batch as soon as it is full, the rest at the end in the order they began."""
    groups: dict[tuple, list[tuple[Key, torch.Tensor]]] = defaultdict(list)
    for key, image in items:
        group = groups[(tuple(image.shape), image.dtype)]
        group.append((key, image))
        if len(group) == batch_size:
            yield list(group)
            group.clear()
    yield from (group for group in groups.values() if group)


def batch_probabilities(
    segmenter: Segmenter,
    images: Sequence[torch.Tensor],
    *,
    window: tuple[int, int] | None = None,
    flip: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-size C x H x W ``images`` (uint8, or float: see seglab.data.io) as the batch the
    model takes (N x C x H x W float, uint8 divided by 255) and its class probabilities
    (N x K x H x W float32, on the CPU): the one inference of predict, on files and on images
    in memory alike."""
    batch = torch.stack(list(images))
    batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()  # in [0, 1]
    probs = predict_probabilities(segmenter, batch.to(segmenter.device), flip=flip, window=window)
    return batch, probs.cpu()


def predict_images(
    segmenter: Segmenter,
    images: Sequence[torch.Tensor],
    *,
    batch_size: int = 4,
    window: tuple[int, int] | None = None,
    flip: bool = False,
    progress: bool = False,
) -> list[torch.Tensor]:
    """K x H x W class probabilities (float32, CPU) of each C x H x W image (as
    :func:`input_image` gives it), in the order given, batched as :func:`predict_files` batches
    files."""
    if batch_size < 1:
        raise SeglabError(f"predict: batch_size {batch_size} must be at least 1")
    found: list[torch.Tensor | None] = [None] * len(images)
    bar = tqdm(desc="predict", unit="image", total=len(images), disable=not progress)
    for group in same_size_batches(enumerate(images), batch_size):
        _, probs = batch_probabilities(
            segmenter, [image for _, image in group], window=window, flip=flip
        )
        for (index, _), p in zip(group, probs):
            found[index] = p
        bar.update(len(group))
    bar.close()
    return found


def _frames(
    paths: list[Path],
    channels: int,
    report: Callable[[str], None],
    videos: OverlayVideos | None = None,
) -> Iterator[tuple[str, torch.Tensor | None]]:
    """(output name, C x H x W image or None) for each image file and each video frame; each
    video opened is announced to ``videos``."""
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path, channels, report, videos)
            continue
        try:
            image = read_image(path, channels)
        except SeglabError as err:  # bands the model cannot take: the message names the file
            report(f"{err}; skipped")
            yield path.stem, None
            continue
        except Exception as err:  # any decoder failure: name the file, go on with the rest
            report(f"{path}: cannot read image ({first_line(err)}); skipped")
            yield path.stem, None
            continue
        yield path.stem, match_channels(image, channels)


def match_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A colour image for a grey model becomes grey (the mean of its channels)."""
    if channels == 1 and image.shape[0] != 1:
        mean = image.float().mean(0, keepdim=True)
        return mean.round().to(torch.uint8) if image.dtype == torch.uint8 else mean
    return image


def input_image(image: ImageInput, channels: int) -> torch.Tensor:
    """One image given by its path or in memory, as C x H x W with the model's ``channels``,
    read as :func:`predict_files` reads a file (seglab.data.io): a path or a Pillow image decoded
    alike; a NumPy array (H x W, or H x W x C: channels last, as Pillow gives it) or a tensor
    (H x W, or C x H x W: channels first, as torchvision), its values taken as a file's of the
    same type (uint8 as it is, other integers divided by their type's largest value, floats as
    they are). One-line SeglabError for anything else."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise SeglabError(f"predict: {path}: no such image file")
        try:
            return read_image(path, channels)
        except SeglabError:  # bands the model cannot take: the message names the file
            raise
        except Exception as err:  # any decoder failure, in one line naming the file
            raise SeglabError(f"predict: {path}: cannot read image ({first_line(err)})") from None
    if isinstance(image, Image.Image):
        return image_tensor(image, channels)
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return fit_bands(bands_tensor(_channels_first(image)), channels, "predict: the image")
    raise SeglabError(
        "predict: an image is a path, a Pillow image, a NumPy array or a torch tensor, not "
        f"{type(image).__name__}"
    )


def _channels_first(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """C x H x W of an array (H x W [x C]) or a tensor ([C x] H x W), in its own type."""
    if image.ndim not in (2, 3):
        raise SeglabError(
            "predict: an image is H x W or H x W x C (C x H x W for a tensor), not of shape "
            f"{tuple(image.shape)}; give a list for several images"
        )
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        array = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
        return array[None] if array.ndim == 2 else array
    return image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)


def _video_frames(
    path: Path,
    channels: int,
    report: Callable[[str], None],
    videos: OverlayVideos | None = None,
):
    try:
        import cv2  # optional: videos need OpenCV
    except ImportError:
        report(f"{path}: videos need OpenCV (pip install opencv-python-headless); skipped")
        yield path.stem, None
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        report(f"{path}: cannot open video; skipped")
        yield path.stem, None
        return
    if videos is not None:
        videos.open(path, capture.get(cv2.CAP_PROP_FPS))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        rgb = torch.from_numpy(frame[..., ::-1].copy()).permute(2, 0, 1)
        yield f"{path.stem}_{index:06d}", match_channels(rgb, channels)
        index += 1
    capture.release()


class OverlayVideos:
    """The overlay video of each video being predicted, written frame by frame (OpenCV, MPEG-4)
    as its frames' predictions arrive, in order, at the source's frame rate."""

    def __init__(self, out: Path, info: DatasetInfo, report: Callable[[str], None]):
        self.out, self.info, self.report = out, info, report
        self.videos: dict[str, dict] = {}  # stem -> source, rate, start, writer, frames, last

    def open(self, source: Path, rate: float) -> None:
        self.videos[source.stem] = {
            "source": source,
            "rate": rate if rate and rate > 0 else 25.0,
            "start": time.perf_counter(),
            "writer": None,
            "frames": 0,
            "last": time.perf_counter(),
        }

    def add(self, name: str, frame: torch.Tensor) -> None:
        """Frame ``name`` (STEM_NNNNNN) overlaid, 3 x H x W uint8, if it is a video's."""
        stem, _, index = name.rpartition("_")
        video = self.videos.get(stem)
        if video is None or not index.isdigit():
            return
        import cv2  # present: the video was opened with it

        picture = np.ascontiguousarray(frame.permute(1, 2, 0).numpy()[..., ::-1])  # BGR
        if video["writer"] is None:
            height, width = picture.shape[:2]
            path = self.out / f"{stem}{VIDEO_OVERLAY_SUFFIX}"
            video["writer"] = cv2.VideoWriter(
                str(path), cv2.VideoWriter_fourcc(*"mp4v"), video["rate"], (width, height)
            )
            if not video["writer"].isOpened():
                self.report(f"{video['source']}: cannot write {path} here (no MPEG-4 encoder)")
                del self.videos[stem]
                return
        video["writer"].write(picture)
        video["frames"] += 1
        video["last"] = time.perf_counter()

    def close(self) -> list[VideoOverlay]:
        written = []
        for stem, video in self.videos.items():
            if video["writer"] is None:
                continue
            video["writer"].release()
            written.append(
                VideoOverlay(
                    video["source"],
                    self.out / f"{stem}{VIDEO_OVERLAY_SUFFIX}",
                    video["frames"],
                    video["last"] - video["start"],
                )
            )
        return written


def _predict_batch(
    segmenter: Segmenter,
    group: list[tuple[str, torch.Tensor]],
    out: Path,
    probabilities: bool,
    window: tuple[int, int] | None,
    flip: bool,
    videos: OverlayVideos | None = None,
) -> int:
    batch, probs = batch_probabilities(
        segmenter, [image for _, image in group], window=window, flip=flip
    )
    classes = probs.argmax(1)
    for k, (name, _) in enumerate(group):
        mask = palette_png(classes[k].numpy(), segmenter.info)
        _write(out / f"{name}.png", mask.save)
        panel = overlay_panel(batch[k], classes[k], segmenter.info)
        _write(out / f"{name}_overlay.png", panel.save)
        if videos is not None:
            videos.add(name, overlay(batch[k], classes[k], segmenter.info))
        if probabilities:
            scores = probs[k].numpy().astype(np.float16)
            _write(out / f"{name}{PROBABILITIES_SUFFIX}", partial(np.save, arr=scores))
    return len(group)


def _write(path: Path, save: Callable[[Path], object]) -> None:
    """``save(path)``; a failure (a full disk) is one line naming the file, and leaves no partial
    file: the predictions written before it are whole."""
    try:
        save(path)
    except OSError as err:
        path.unlink(missing_ok=True)
        raise SeglabError(
            f"predict: cannot write {path}: {err.strerror or first_line(err)}; the predictions "
            "written before it are complete"
        ) from None


def palette_png(classes: np.ndarray, info: DatasetInfo) -> Image.Image:
    """A PIL 'P' image of class indices whose palette holds the class colours (ignored pixels
    black), so any image viewer shows the colours and any reader gets the indices back."""
    image = Image.fromarray(classes.astype(np.uint8), mode="P")
    image.putpalette(palette(info).flatten().tolist())
    return image
