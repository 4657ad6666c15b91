"""Predicting on new images: for each input, a class-index PNG of the input's size with the class
palette embedded, a colour overlay, and optionally the class probabilities."""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seglab.data.io import IMAGE_SUFFIXES, read_image
from seglab.data.show import overlay_panel
from seglab.deployment.runtime import Runtime, palette_png
from seglab.engine.inference import predict_probabilities

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


def expand_inputs(inputs: Sequence[str], report: Callable[[str], None]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns; what matches nothing is reported."""
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
    return paths


def predict_files(
    runtime: Runtime,
    inputs: Iterable[Path],
    out: str | os.PathLike,
    *,
    batch_size: int = 4,
    probabilities: bool = False,
    window: tuple[int, int] | None = None,
    flip: bool = False,
    device: str = "cpu",
    report: Callable[[str], None] = print,
    progress: bool = True,
) -> tuple[int, int]:
    """Writes outputs for every readable input; returns (written, failed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images: dict[tuple, list[tuple[Path, torch.Tensor]]] = defaultdict(list)
    failed, written = 0, 0
    paths = list(inputs)
    frames = _frames(paths, runtime.in_channels, report)
    bar = tqdm(desc="predict", unit="image", total=len(paths), disable=not progress)
    for name, image in frames:
        if image is None:
            failed += 1
            continue
        group = images[tuple(image.shape)]
        group.append((name, image))
        if len(group) == batch_size:
            written += _predict_batch(runtime, group, out, probabilities, window, flip, device)
            bar.update(len(group))
            group.clear()
    for group in images.values():
        if group:
            written += _predict_batch(runtime, group, out, probabilities, window, flip, device)
            bar.update(len(group))
    bar.close()
    return written, failed


def _frames(paths: list[Path], channels: int, report: Callable[[str], None]):
    """(output name, image tensor or None) for each image file and each video frame."""
    for path in paths:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path, channels, report)
            continue
        try:
            yield path.stem, read_image(path, channels)
        except Exception as err:  # any decoder failure: name the file, go on with the rest
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            report(f"{path}: cannot read image ({reason}); skipped")
            yield path.stem, None


def _video_frames(path: Path, channels: int, report: Callable[[str], None]):
    try:
        import cv2
    except ImportError:
        report(f"{path}: videos need OpenCV (pip install opencv-python-headless); skipped")
        yield path.stem, None
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        report(f"{path}: cannot open video; skipped")
        yield path.stem, None
        return
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        rgb = torch.from_numpy(frame[..., ::-1].copy()).permute(2, 0, 1)
        yield (
            f"{path.stem}_{index:06d}",
            rgb.float().mean(0, keepdim=True).byte() if channels == 1 else rgb,
        )
        index += 1
    capture.release()


@torch.inference_mode()
def _predict_batch(runtime, group, out: Path, probabilities: bool, window, flip, device) -> int:
    batch = torch.stack([image for _, image in group])
    batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
    probs = predict_probabilities(runtime.model, batch.to(device), flip=flip, window=window).cpu()
    classes = probs.argmax(1).numpy()
    for k, (name, image) in enumerate(group):
        palette_png(classes[k], runtime.info).save(out / f"{name}.png")
        image01 = image.float() / 255 if image.dtype == torch.uint8 else image
        overlay_panel(image01, torch.from_numpy(classes[k]), runtime.info).save(
            out / f"{name}_overlay.png"
        )
        if probabilities:
            np.save(out / f"{name}_probabilities.npy", probs[k].numpy().astype(np.float16))
    return len(group)
