"""The deployment card: what an exported model is (its format, classes, colours, normalisation,
input-size policy and the checkpoint it came from, by hash) and what it was measured to do
(parity against the PyTorch model, mIoU and latency on the machine that measured it, with that
machine's description), with the tolerances ``seglab verify`` holds it to. A pure record, with its
JSON and Markdown: each format stores it in its file (seglab.deployment.formats), and
seglab.deployment.measure fills in the measurement, the same for export and verify."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from seglab.data.info import DatasetInfo
from seglab.engine.machine import describe_machine
from seglab.errors import SeglabError
from seglab.formatting import number, percent
from seglab.models.unet import ModelSpec

CARD_VERSION = 1


@dataclass(frozen=True)
class InputPolicy:
    """The input a model takes: images in [0, 1], N x C x H x W float32, normalised inside the
    graph. ``size`` is the size it was measured at (None in files of older seglab versions);
    ``fixed`` graphs take exactly 1 x C x ``size`` and every image is fitted to it, the same way
    for every form (see seglab.engine.segmenter.FixedInputSegmenter)."""

    size: tuple[int, int] | None
    fixed: bool = False

    def describe(self) -> str:
        if not self.fixed:
            at = f" (measured at {self.size[0]}x{self.size[1]})" if self.size else ""
            return f"any batch and size{at}"
        height, width = self.size
        return (
            f"fixed {height}x{width}, batch 1: each image is padded (its edge values, at the "
            f"bottom and right) to at least {height}x{width}, a larger one is tiled with "
            f"overlapping {height}x{width} windows, and the logits are cropped back to the image"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size) if self.size else None,
            "fixed": self.fixed,
            "layout": "N x C x H x W float32 images in [0, 1]; normalisation inside the graph",
            "policy": self.describe(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> InputPolicy:
        if not isinstance(d, dict):  # older files: a sentence, any size
            return cls(None, False)
        size = d.get("size")
        return cls(tuple(int(v) for v in size) if size else None, bool(d.get("fixed", False)))


@dataclass
class Measurement:
    """What one measurement found on ``images`` images of ``split`` of ``data``: the artifact's
    mIoU (fractions) and batch-1 latency at the input size on this machine; beside it PyTorch
    fp32's, and the parity of the two (largest logit difference on ``parity_images`` images,
    percent of scored pixels whose class changes), when the source checkpoint was at hand."""

    data: str
    split: str
    images: int
    size: tuple[int, int]
    miou: float
    latency_ms: float
    latency_p90_ms: float
    repeats: int
    machine: dict[str, Any] = field(default_factory=dict)
    miou_pytorch: float | None = None
    max_logit_diff: float | None = None
    changed_pixels_percent: float | None = None
    parity_images: int = 0
    pytorch_latency_ms: float | None = None

    @property
    def miou_drop_points(self) -> float | None:
        """PyTorch fp32 mIoU minus the artifact's, in points (positive: the artifact is worse)."""
        return None if self.miou_pytorch is None else 100 * (self.miou_pytorch - self.miou)

    @property
    def speedup(self) -> float | None:
        """PyTorch fp32 latency over the artifact's."""
        if self.pytorch_latency_ms is None:
            return None
        return self.pytorch_latency_ms / self.latency_ms

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size": list(self.size)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["size"] = tuple(values["size"])
        return cls(**values)


@dataclass(frozen=True)
class Tolerances:
    """How far an artifact may be from PyTorch fp32 (at export and on any machine that verifies
    it), and how far a re-measurement may move from the card (verify)."""

    miou_drop_points: float  # the artifact's mIoU at most this many points below PyTorch's
    miou_drift_points: float  # verify: at most this far from the card's mIoU, same images
    changed_pixels_percent: float  # scored pixels whose class differs from PyTorch's
    max_logit_diff: float | None  # None: not bounded (INT8 changes the logits by design)

    def failures(self, m: Measurement) -> list[str]:
        """Each bound ``m`` breaks, in one line; nothing is checked against PyTorch when ``m``
        has no PyTorch figures."""
        found = []
        drop = m.miou_drop_points
        if drop is not None and drop > self.miou_drop_points:
            found.append(
                f"mIoU {drop:.2f} points below PyTorch fp32 (tolerance {self.miou_drop_points})"
            )
        changed = m.changed_pixels_percent
        if changed is not None and changed > self.changed_pixels_percent:
            found.append(
                f"{changed:.3f}% of pixels change class against PyTorch fp32 "
                f"(tolerance {self.changed_pixels_percent}%)"
            )
        diff = m.max_logit_diff
        if diff is not None and self.max_logit_diff is not None and diff > self.max_logit_diff:
            found.append(
                f"largest logit difference to PyTorch fp32 {diff:.2e} "
                f"(tolerance {self.max_logit_diff:.0e})"
            )
        return found


# The bars every format of a kind is held to: an fp32 form gives PyTorch's results up to
# rounding; an INT8 form trades a little accuracy for speed (its logits are not bounded:
# quantisation changes them by design).
FP32_TOLERANCES = Tolerances(0.05, 0.05, 0.1, 1e-3)
INT8_TOLERANCES = Tolerances(0.5, 0.25, 5.0, None)


@dataclass
class DeploymentCard:
    """Everything an exported model says about itself. ``source`` names the checkpoint (path,
    sha256, step); ``content_sha256`` is the hash of the model's content without this card, so
    a changed model is detected; ``measured`` is None in bare files (the benchmark's)."""

    format: str
    info: DatasetInfo
    spec: ModelSpec
    input: InputPolicy
    normalisation: dict[str, Any] = field(default_factory=dict)  # mean, std (inside the graph)
    source: dict[str, Any] | None = None
    content_sha256: str | None = None
    calibration: dict[str, Any] | None = None  # INT8: data, split, images, method
    tolerances: Tolerances | None = None
    measured: Measurement | None = None
    failures: list[str] = field(default_factory=list)  # tolerances broken at export
    seglab_version: str = ""
    created: str = ""
    # ExecuTorch: how the program runs, read from it when the card is stored: "partitions"
    # (delegate calls), "backends", "portable_calls" and "portable_operators" (outside them)
    delegation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seglab_card": CARD_VERSION,
            "format": self.format,
            "dataset": self.info.to_dict(),
            "model": self.spec.to_dict(),
            "input": self.input.to_dict(),
            "normalisation": self.normalisation,
            "source": self.source,
            "content_sha256": self.content_sha256,
            "calibration": self.calibration,
            "tolerances": asdict(self.tolerances) if self.tolerances else None,
            "measured": self.measured.to_dict() if self.measured else None,
            "failures": list(self.failures),
            "seglab_version": self.seglab_version,
            "created": self.created,
            "delegation": self.delegation,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str, where: str) -> DeploymentCard:
        """The card in ``text`` (also the metadata of .onnx files of older seglab versions:
        dataset and model only); one-line SeglabError naming ``where`` when it is damaged."""
        try:
            d = json.loads(text)
            version = d.get("seglab_card", 0)
            if not isinstance(version, int) or version > CARD_VERSION:
                raise SeglabError(f"{where} needs a newer seglab (card version {version!r})")
            tolerances, measured = d.get("tolerances"), d.get("measured")
            return cls(
                format=d.get("format", "onnx"),
                info=DatasetInfo.from_dict(d["dataset"]),
                spec=ModelSpec.from_dict(d["model"]),
                input=InputPolicy.from_dict(d.get("input")),
                normalisation=d.get("normalisation") or {},
                source=d.get("source"),
                content_sha256=d.get("content_sha256"),
                calibration=d.get("calibration"),
                tolerances=Tolerances(**tolerances) if tolerances else None,
                measured=Measurement.from_dict(measured) if measured else None,
                failures=list(d.get("failures") or []),
                seglab_version=d.get("seglab_version", ""),
                created=d.get("created", ""),
                delegation=d.get("delegation"),
            )
        except SeglabError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise SeglabError(f"{where}: damaged seglab metadata ({err})") from None

    def summary_lines(self) -> list[str]:
        """The card in a few lines, for a terminal."""
        lines = [f"format: {self.format}; input: {self.input.describe()}"]
        if self.calibration:
            c = self.calibration
            lines.append(f"INT8 calibrated on {c['images']} {c['split']} images of {c['data']}")
        if self.delegation:
            lines.append(f"graph: {describe_delegation(self.delegation)}")
        m = self.measured
        if m is None:
            return lines
        lines.append(
            f"mIoU on {m.images} {m.split} images: {percent(m.miou)} "
            f"(PyTorch fp32 {percent(m.miou_pytorch)}, drop {number(m.miou_drop_points, '.2f')} "
            "points)"
        )
        lines.append(
            f"parity with PyTorch fp32: largest logit difference {number(m.max_logit_diff, '.2e')}"
            f" ({m.parity_images} images), {number(m.changed_pixels_percent, '.3f')}% of pixels "
            "change class"
        )
        speedup = f", {m.speedup:.2f}x PyTorch fp32's" if m.speedup else ""
        lines.append(
            f"latency, batch 1 at {m.size[0]}x{m.size[1]}: {m.latency_ms:.1f} ms median "
            f"(PyTorch fp32 {number(m.pytorch_latency_ms, '.1f')} ms{speedup}) on "
            f"{describe_machine(m.machine)}"
        )
        return lines

    def to_markdown(self, title: str) -> str:
        """FILE.card.md: the card for a person."""
        d = self.to_dict()
        info = self.info
        lines = [
            f"# Deployment card: {title}",
            "",
            f"- format: **{self.format}**; input: {self.input.describe()}",
            f"- model: U-Net on {self.spec.encoder}, {info.num_classes} classes of {info.name}, "
            f"{info.in_channels} input channel(s), ignore index {info.ignore_index}",
            f"- normalisation (inside the model; feed images in [0, 1]): mean "
            f"{self.normalisation.get('mean')}, std {self.normalisation.get('std')}",
        ]
        if self.source:
            lines.append(
                f"- source checkpoint: `{self.source['checkpoint']}` (sha256 "
                f"`{self.source['sha256']}`, step {self.source.get('step')})"
            )
            if self.source.get("degenerate"):
                lines.append(f"- **a useless model**: {self.source['degenerate']}")
            if self.source.get("undertrained"):
                lines.append(f"- **undertrained**: {self.source['undertrained']}")
        lines.append(f"- model content sha256 (without this card): `{self.content_sha256}`")
        if self.calibration:
            c = self.calibration
            lines.append(
                f"- INT8 calibration: {c['images']} {c['split']} images of `{c['data']}` "
                f"({c['method']})"
            )
        if self.delegation:
            lines.append(f"- graph: {describe_delegation(self.delegation)}")
        lines.append(f"- seglab {self.seglab_version}, {self.created}")
        lines += ["", "## Classes", "", "| index | class | colour |", "| --- | --- | --- |"]
        for k, (name, colour) in enumerate(zip(info.classes, info.colors)):
            lines.append(f"| {k} | {name} | #{''.join(f'{c:02x}' for c in colour)} |")
        m = self.measured
        if m is not None:
            t = self.tolerances
            lines += [
                "",
                f"## Measured on {m.images} {m.split} images of `{m.data}`",
                "",
                "| quantity | value | tolerance |",
                "| --- | --- | --- |",
                f"| mIoU, {self.format} | {percent(m.miou)} | |",
                f"| mIoU, PyTorch fp32 | {percent(m.miou_pytorch)} | |",
                f"| mIoU drop (points) | {number(m.miou_drop_points, '.2f')} | "
                f"{t.miou_drop_points if t else '-'} |",
                f"| largest logit difference ({m.parity_images} images) | "
                f"{number(m.max_logit_diff, '.2e')} | "
                f"{number(t.max_logit_diff if t else None, '.0e', 'not bounded')} |",
                f"| pixels whose class changes (%) | {number(m.changed_pixels_percent, '.3f')} | "
                f"{t.changed_pixels_percent if t else '-'} |",
                f"| latency, batch 1 at {m.size[0]}x{m.size[1]}, median of {m.repeats} (ms) | "
                f"{m.latency_ms:.1f} | reported |",
                f"| latency p90 (ms) | {m.latency_p90_ms:.1f} | reported |",
                f"| PyTorch fp32 latency (ms) | {number(m.pytorch_latency_ms, '.1f')} | reported |",
                "",
                f"Machine: {describe_machine(m.machine)}.",
                "",
                "Within tolerance." if not self.failures else "Outside tolerance:",
            ]
            lines += [f"- {failure}" for failure in self.failures]
            if t:
                lines += [
                    "",
                    f"`seglab verify` re-measures on the machine it runs on: mIoU may move "
                    f"{t.miou_drift_points} points from this card on the same images.",
                ]
        lines += ["", "<details><summary>card JSON</summary>", "", "```json"]
        lines += [json.dumps(d, indent=2), "```", "", "</details>", ""]
        return "\n".join(lines)


def describe_delegation(d: dict[str, Any]) -> str:
    """A program's delegation in words: its partitions and what runs outside them."""
    partitions, backends = d.get("partitions", 0), "/".join(d.get("backends") or [])
    text = "no delegated partition"
    if partitions:
        text = f"{partitions} {backends} partition{'s' if partitions != 1 else ''}"
    calls = d.get("portable_calls", 0)
    if not calls:
        return f"{text}, nothing outside {'it' if partitions == 1 else 'them'}"
    operators = ", ".join(d.get("portable_operators") or [])
    return f"{text}, {calls} portable kernel call{'s' if calls != 1 else ''} ({operators})"
