"""Trained models ready to run from a file, each a segmenter (seglab.engine.segmenter): a
checkpoint (.pt, PyTorch) or an exported artifact (.onnx, ONNX Runtime fp32 or INT8; .pte,
ExecuTorch with XNNPACK). Every artifact carries its deployment card (seglab.deployment.card):
in an .onnx file as the metadata entry "seglab", in a .pte file as the constant method
"seglab_card" (a string). The card holds the hash of the model's content without the card, so a
changed model is detected (:func:`content_sha256`)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mmap
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from seglab.data.info import DatasetInfo
from seglab.deployment.backends import ARTIFACT_SUFFIXES
from seglab.deployment.card import DeploymentCard, InputPolicy
from seglab.engine.inference import sliding_window
from seglab.engine.segmenter import Segmenter, TorchSegmenter, checkpoint_segmenter
from seglab.errors import SeglabError, first_line

ONNX_METADATA_KEY = "seglab"
PTE_CARD_METHOD = "seglab_card"  # a constant method of the program: the card as a string
PTE_CARD_PREFIX = b"SEGLAB-CARD\n"  # marks the card's bytes, so it is found without a runtime
PTE_CARD_CAPACITY = 1 << 16  # bytes kept for the card (patched in place, padded with spaces)


def is_artifact(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an exported model (by its suffix) rather than a checkpoint."""
    return Path(path).suffix.lower() in ARTIFACT_SUFFIXES


class OnnxSegmenter:
    """An ONNX Runtime session on the CPU as a segmenter: images in [0, 1] (the normalisation is
    inside the graph), logits out. ``kind`` is "onnxruntime" (fp32) or "int8"."""

    device = torch.device("cpu")

    def __init__(
        self,
        path: str | os.PathLike,
        info: DatasetInfo,
        *,
        name: str = "",
        kind: str = "",
        card: DeploymentCard | None = None,
    ):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.info, self.name = info, name or str(path)
        self.kind = kind or "onnxruntime"
        self.card = card

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().cpu().float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    def __repr__(self) -> str:
        return f"OnnxSegmenter({self.name!r}, {self.kind})"


class ExecuTorchSegmenter:
    """A .pte program run by ExecuTorch's runtime on the CPU (its XNNPACK delegate). It takes
    exactly 1 x C x ``size`` images; :class:`FixedInputSegmenter` fits any other."""

    device = torch.device("cpu")
    kind = "executorch"

    def __init__(
        self,
        path: str | os.PathLike,
        info: DatasetInfo,
        size: tuple[int, int],
        *,
        name: str = "",
        card: DeploymentCard | None = None,
    ):
        self.program = executorch_runtime().load_program(str(path))
        with quiet_stderr():  # the CPU probe's log lines of XNNPACK's initialisation
            self.method = self.program.load_method("forward")
        self.info, self.size, self.name, self.card = info, tuple(size), name or str(path), card

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.method.execute([images.detach().cpu().float().contiguous()])[0]

    def __repr__(self) -> str:
        return f"ExecuTorchSegmenter({self.name!r}, {self.size[0]}x{self.size[1]})"


class FixedInputSegmenter:
    """A segmenter that takes only 1 x C x ``size`` images (``inner``), run on any batch and
    size: each image padded with its edge values (bottom and right) to at least ``size``, a
    larger one tiled with overlapping windows of ``size``, and the logits cropped back. Every
    other attribute (``info``, ``card``, ...) is the inner segmenter's."""

    def __init__(self, inner: Segmenter, size: tuple[int, int]):
        self.inner, self.size = inner, tuple(size)

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._one(image[None]) for image in images])

    def _one(self, image: torch.Tensor) -> torch.Tensor:
        (height, width), (rows, columns) = image.shape[-2:], self.size
        padding = (0, max(0, columns - width), 0, max(0, rows - height))
        padded = F.pad(image, padding, mode="replicate") if any(padding) else image
        if tuple(padded.shape[-2:]) == self.size:
            logits = self.inner(padded)
        else:
            logits = sliding_window(self.inner, padded, self.size)
        return logits[..., :height, :width]

    def __repr__(self) -> str:
        return f"FixedInputSegmenter({self.inner!r})"


def fit_input(segmenter: Segmenter, policy: InputPolicy) -> Segmenter:
    """``segmenter`` run under ``policy``: as it is for any size, fitted for a fixed size."""
    return FixedInputSegmenter(segmenter, policy.size) if policy.fixed else segmenter


def pytorch_reference(model: torch.nn.Module, info: DatasetInfo, policy: InputPolicy) -> Segmenter:
    """The PyTorch fp32 model an artifact is held against, on the CPU in the default memory
    format (the benchmark's "eager"), run under the artifact's input policy."""
    return fit_input(TorchSegmenter(model, info, name="pytorch fp32", device="cpu"), policy)


def source_model(card: DeploymentCard) -> tuple[torch.nn.Module | None, str]:
    """The PyTorch model an artifact was exported from, when its checkpoint is at the path the
    card records and unchanged (same sha256); else None and why not."""
    from seglab.deployment.card import file_sha256
    from seglab.engine.checkpoint import load_model

    if not card.source:
        return None, "the card names no source checkpoint"
    recorded = card.source["checkpoint"]
    found = next(
        (Path(p) for p in (recorded, card.source.get("path")) if p and Path(p).is_file()), None
    )
    if found is None:
        return None, f"its source checkpoint {recorded} is not here"
    if file_sha256(found) != card.source["sha256"]:
        return None, f"its source checkpoint {found} has changed since the export (sha256)"
    return load_model(found)[0], ""


# --- reading and writing the card ---------------------------------------------------------------


def read_card(path: str | os.PathLike) -> DeploymentCard:
    """The deployment card an exported file carries; one-line SeglabError for a missing,
    damaged or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise SeglabError(f"model {path} does not exist")
    if path.suffix.lower() == ".pte":
        text = _pte_card_text(path)
    else:
        metadata = {p.key: p.value for p in _load_onnx(path).metadata_props}
        if ONNX_METADATA_KEY not in metadata:
            raise SeglabError(f"{path} was not exported by seglab (no class metadata)")
        text = metadata[ONNX_METADATA_KEY]
    return DeploymentCard.from_json(text, str(path))


def write_card(path: str | os.PathLike, card: DeploymentCard) -> None:
    """Store ``card`` in the exported file ``path`` (replacing the one it carries), atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.suffix.lower() == ".pte":
            blob = bytearray(path.read_bytes())
            start = _pte_card_offset(blob, path)
            blob[start : start + PTE_CARD_CAPACITY] = pte_card_bytes(card.to_json(), str(path))
            tmp.write_bytes(blob)
        else:
            import onnx

            proto = _load_onnx(path)
            for entry in list(proto.metadata_props):
                if entry.key == ONNX_METADATA_KEY:
                    proto.metadata_props.remove(entry)
            entry = proto.metadata_props.add()
            entry.key, entry.value = ONNX_METADATA_KEY, card.to_json()
            onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def content_sha256(path: str | os.PathLike) -> str:
    """The sha256 of the model's content without its card: of the graph (its nodes and weights)
    in an .onnx file, of every byte but the card's in a .pte file."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.suffix.lower() == ".pte":
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as blob:
            start = _pte_card_offset(blob, path)
            digest.update(blob[:start])
            digest.update(blob[start + PTE_CARD_CAPACITY :])
    else:
        digest.update(_load_onnx(path).graph.SerializeToString())
    return digest.hexdigest()


def pte_card_bytes(text: str, where: str) -> bytes:
    """The card's bytes in a .pte file: the prefix, then ``text``, padded to the capacity."""
    data = PTE_CARD_PREFIX + text.encode("ascii")
    if len(data) > PTE_CARD_CAPACITY:
        raise SeglabError(f"{where}: the card ({len(data)} bytes) exceeds {PTE_CARD_CAPACITY}")
    return data.ljust(PTE_CARD_CAPACITY, b" ")


def _pte_card_offset(blob, path: Path) -> int:
    start = blob.find(PTE_CARD_PREFIX)
    if start < 0 or blob.find(PTE_CARD_PREFIX, start + 1) >= 0:
        raise SeglabError(f"{path} was not exported by seglab (no deployment card)")
    if start + PTE_CARD_CAPACITY > len(blob):
        raise SeglabError(f"{path}: damaged seglab metadata (the card is cut short)")
    return start


def _pte_card_text(path: Path) -> str:
    with open(path, "rb") as f:
        try:
            blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise SeglabError(f"{path} was not exported by seglab (an empty file)") from None
        with blob:
            start = _pte_card_offset(blob, path)
            region = blob[start + len(PTE_CARD_PREFIX) : start + PTE_CARD_CAPACITY]
    return region.decode("ascii", errors="replace").rstrip()


def _load_onnx(path: Path):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as err:  # a damaged or foreign file: whatever onnx raises
        raise SeglabError(f"cannot load ONNX model {path}: {first_line(err)}") from None


# --- ExecuTorch's runtime -----------------------------------------------------------------------


def executorch_runtime():
    """ExecuTorch's Python runtime; a one-line SeglabError where it is not installed."""
    try:
        with quiet_logger("torch.utils._pytree"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its notes on experimental and deprecated APIs
            from executorch.runtime import Runtime
    except ImportError as err:
        raise SeglabError(
            f"ExecuTorch is not installed here ({first_line(err)}); "
            "pip install 'seglab[executorch]' for .pte models"
        ) from None
    return Runtime.get()


@contextlib.contextmanager
def quiet_logger(name: str):
    """Warnings of logger ``name`` (torch's notes on ExecuTorch's imports) are not shown."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def quiet_stderr():
    """What native code writes to the standard error stream while the block runs is dropped."""
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# --- loading ------------------------------------------------------------------------------------


def artifact_segmenter(path: str | os.PathLike, card: DeploymentCard | None = None) -> Segmenter:
    """The exported model in ``path`` (its ``card``, read from it when not given) as a CPU
    segmenter under its input policy, with ``card`` as an attribute."""
    path = Path(path)
    card = card or read_card(path)
    try:
        if path.suffix.lower() == ".pte":
            if not card.input.fixed or card.input.size is None:
                raise SeglabError(f"{path}: damaged seglab metadata (no fixed input size)")
            segmenter = ExecuTorchSegmenter(path, card.info, card.input.size, card=card)
        else:
            kind = "int8" if card.format == "onnx-int8" else "onnxruntime"
            segmenter = OnnxSegmenter(path, card.info, kind=kind, card=card)
    except SeglabError:
        raise
    except Exception as err:  # the runtime's own failures (invalid graph or program, ...)
        raise SeglabError(f"cannot load model {path}: {first_line(err)}") from None
    return fit_input(segmenter, card.input)


def load_segmenter(
    path: str | os.PathLike, device: str = "cpu", *, precision: str = "fp32"
) -> Segmenter:
    """The model in ``path``: a seglab checkpoint (PyTorch on ``device``: "auto", "cpu",
    "cuda", "cuda:N"; fp32 unless ``precision`` says "auto", "bf16" or "fp16") or a file
    exported by seglab (.onnx: ONNX Runtime, .pte: ExecuTorch, on the CPU, under the input
    policy its card states; the card is the segmenter's ``card``). One-line SeglabError for
    anything else."""
    path = Path(path)
    if not is_artifact(path):
        return checkpoint_segmenter(path, device, precision=precision)
    if device.startswith("cuda"):
        raise SeglabError(
            f"device {device!r}: an exported {path.suffix} model runs on the CPU here; use cpu"
        )
    return artifact_segmenter(path)


def evaluate_model(
    path: str | os.PathLike,
    data: str | None = None,
    split: str = "val",
    *,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """``seglab evaluate``: a checkpoint as :func:`seglab.engine.evaluate.evaluate_checkpoint`
    evaluates it, or an exported model (on the CPU, in batches of ``batch_size``, default 1) on
    ``split`` of ``data`` (default: the dataset its card was measured on); ``options`` are the
    test-time augmentation (flip, scales, window) and the loader's workers. Returns the metrics
    with an ``evaluation`` entry saying what was done (and the exported model's format)."""
    from seglab.deployment.card import open_model_data
    from seglab.engine.evaluate import evaluate_checkpoint, evaluation_record

    if not is_artifact(path):
        return evaluate_checkpoint(
            path, data, split, batch_size=batch_size, device=device, progress=progress, **options
        )
    if batch_size is not None and batch_size < 1:
        raise SeglabError(f"evaluate: --batch-size {batch_size} must be at least 1")
    segmenter = load_segmenter(path, "cpu" if device == "auto" else device)
    card = segmenter.card
    data_name = data or (card.measured.data if card.measured else None)
    if not data_name:
        raise SeglabError(f"evaluate: {path} does not record its dataset; give --data")
    dataset = open_model_data(data_name, card.info, str(path), given=bool(data))
    record = evaluation_record(
        segmenter,
        str(path),
        data_name,
        dataset,
        split,
        batch_size=batch_size or 1,
        progress=progress,
        **options,
    )
    record["evaluation"]["format"] = card.format
    return record
