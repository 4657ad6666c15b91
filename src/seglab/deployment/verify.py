"""``seglab verify``: an exported model re-measured on the machine it runs on (the target
device) and held to its deployment card: its content must be the one the card describes, its
mIoU must not drift from the card's, and its parity with the PyTorch model (re-checked when the
source checkpoint is at hand and unchanged) must stay within the card's tolerances. Latency is
reported beside the card's, never failed: another machine is expected to be faster or slower."""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seglab.deployment.artifacts import (
    artifact_segmenter,
    content_sha256,
    pytorch_reference,
    read_card,
)
from seglab.deployment.card import DeploymentCard, Measurement
from seglab.deployment.measure import measure, open_model_data, source_model
from seglab.engine.machine import describe_machine
from seglab.errors import SeglabError
from seglab.formatting import html_table, number, percent


@dataclass
class Verification:
    """The card, what was measured now, and each check that failed (one line each)."""

    path: Path
    card: DeploymentCard
    now: Measurement | None  # None: a changed model that could not even be loaded
    content_sha256: str
    same_images: bool  # the card's data, split and images: mIoU drift can be judged
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be re-checked, and why

    @property
    def passed(self) -> bool:
        return not self.failures

    def table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """(header, rows): each quantity on the card and now, with its tolerance."""
        card, now, t = self.card.measured, self.now, self.card.tolerances
        header = ("quantity", "card", "now", "tolerance", "status")
        content = (
            "model content sha256",
            self.card.content_sha256[:12],
            self.content_sha256[:12],
            "equal",
            "ok" if self.content_sha256 == self.card.content_sha256 else "CHANGED",
        )
        if now is None:
            return header, [content, ("measurements", "", "-", "", "the model does not load")]
        drift = 100 * abs(now.miou - card.miou)
        rows = [
            content,
            (
                f"mIoU ({self.card.format})",
                percent(card.miou),
                percent(now.miou),
                f"drift <= {t.miou_drift_points}",
                _verdict(drift <= t.miou_drift_points) if self.same_images else "other images",
            ),
            ("mIoU PyTorch fp32", percent(card.miou_pytorch), percent(now.miou_pytorch), "", ""),
            (
                "mIoU drop (points)",
                number(card.miou_drop_points, ".2f"),
                number(now.miou_drop_points, ".2f"),
                f"<= {t.miou_drop_points}",
                _check(now.miou_drop_points, t.miou_drop_points),
            ),
            (
                "largest logit difference",
                number(card.max_logit_diff, ".2e"),
                number(now.max_logit_diff, ".2e"),
                "not bounded" if t.max_logit_diff is None else f"<= {t.max_logit_diff:.0e}",
                _check(now.max_logit_diff, t.max_logit_diff),
            ),
            (
                "pixels changing class (%)",
                number(card.changed_pixels_percent, ".3f"),
                number(now.changed_pixels_percent, ".3f"),
                f"<= {t.changed_pixels_percent}",
                _check(now.changed_pixels_percent, t.changed_pixels_percent),
            ),
            (
                f"latency ms, batch 1 at {now.size[0]}x{now.size[1]}",
                f"{card.latency_ms:.1f}",
                f"{now.latency_ms:.1f}",
                "reported",
                f"{now.latency_ms / card.latency_ms:.2f}x the card's",
            ),
            (
                "PyTorch fp32 latency ms",
                number(card.pytorch_latency_ms, ".1f"),
                number(now.pytorch_latency_ms, ".1f"),
                "reported",
                "",
            ),
        ]
        return header, rows

    def machines(self) -> list[str]:
        lines = [f"card: {describe_machine(self.card.measured.machine)}"]
        return lines + ([f"now:  {describe_machine(self.now.machine)}"] if self.now else [])

    def _repr_html_(self) -> str:
        verdict = "FAILED" if self.failures else "verified"
        lines = [*self.machines(), *self.notes, *self.failures]
        notes = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
        title = f"<b>{html.escape(str(self.path))}: {verdict} against its card</b>"
        return f"<div>{title}{html_table(*self.table())}{notes}</div>"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "DRIFTED"


def _check(value: float | None, bound: float | None) -> str:
    if value is None:
        return "not re-checked"
    return "ok" if bound is None or value <= bound else "OUTSIDE"


def verify_artifact(
    path: str | os.PathLike,
    *,
    data: str | None = None,
    limit: int | None = None,
    repeats: int | None = None,
    report: Callable[[str], None] = print,
    progress: bool = True,
) -> Verification:
    """Re-measure the exported model ``path`` here on ``data`` (default: the card's dataset,
    split and number of images; ``limit`` caps the images) and hold it to its card. Lines on
    what cannot be re-checked go to ``report``; the result lists every failed check."""
    path = Path(path)
    card = read_card(path)
    if card.measured is None or card.tolerances is None or card.content_sha256 is None:
        raise SeglabError(
            f"verify: {path} carries no deployment card to verify against (a file of an older "
            "seglab or of the benchmark); export it again with seglab export"
        )
    if limit is not None and limit < 1:
        raise SeglabError(f"verify: --limit {limit} must be at least 1")
    recorded = card.measured
    failures, notes = [], []
    content = content_sha256(path)
    if content != card.content_sha256:
        failures.append(
            f"the model's content (sha256 {content[:12]}...) is not the one its card describes "
            f"({card.content_sha256[:12]}...): the file was changed after export"
        )
    model, why_not = source_model(card)
    if model is None:
        notes.append(
            f"{why_not}: parity against PyTorch cannot be re-checked; the card's figures stand"
        )
    data_name = data or recorded.data
    if limit is None and data is None:
        limit = recorded.images
    dataset = open_model_data(data_name, card.info, str(path), given=data is not None)
    against = "the artifact alone" if model is None else "the artifact and PyTorch fp32"
    report(
        f"verify: {path} ({card.format}): measuring {against} on {data_name} "
        f"({recorded.split}{f', first {limit} images' if limit else ''}), then timing at batch 1"
    )
    try:
        segmenter = artifact_segmenter(path, card)
    except SeglabError as err:
        if not failures:  # an unchanged model that does not load here: the runtime's problem
            raise
        failures.append(f"it cannot be loaded ({err})")
        return Verification(path, card, None, content, False, failures, notes)
    reference = None if model is None else pytorch_reference(model, card.info, card.input)
    now = measure(
        segmenter,
        reference,
        dataset,
        data_name,
        card.input.size or recorded.size,
        split=recorded.split,
        limit=limit,
        repeats=repeats or recorded.repeats,
        progress=progress,
    )
    same_images = (now.data, now.split, now.images) == (
        recorded.data,
        recorded.split,
        recorded.images,
    )
    failures += judge(card, now, same_images, notes)
    return Verification(path, card, now, content, same_images, failures, notes)


def judge(card: DeploymentCard, now: Measurement, same_images: bool, notes: list[str]) -> list[str]:
    """Each way ``now`` breaks the card's tolerances, one line each: its mIoU's drift from the
    card (judged only on the card's own images; otherwise a line in ``notes`` says so) and its
    parity with PyTorch."""
    failures, recorded, tolerances = [], card.measured, card.tolerances
    if same_images:
        drift = 100 * abs(now.miou - recorded.miou)
        if drift > tolerances.miou_drift_points:
            failures.append(
                f"mIoU {100 * now.miou:.2f} drifted {drift:.2f} points from the card's "
                f"{100 * recorded.miou:.2f} (tolerance {tolerances.miou_drift_points})"
            )
    else:
        notes.append(
            f"measured on other images than the card ({now.images} {now.split} images of "
            f"{now.data}): mIoU drift is not judged"
        )
    return failures + tolerances.failures(now)
