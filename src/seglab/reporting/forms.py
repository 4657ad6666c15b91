"""The forms a compared model can be deployed in, and each one measured the same way: mIoU on the
compared images, batch-1 latency at the compared size on this machine's CPU, and the memory of a
fresh process that loads and runs it. The forms are the checkpoint itself in PyTorch and one per
export format of seglab.deployment.formats.FORMATS (what ``seglab export --format`` writes), so
a new export format is a new form here with no change to this module."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seglab.data.dataset import Data
from seglab.deployment.benchmark import backend_segmenter
from seglab.deployment.formats import FORMATS, Format
from seglab.deployment.measure import peak_inference_memories, time_segmenter
from seglab.engine.checkpoint import Checkpoint
from seglab.engine.evaluate import EvalOptions, Evaluation, evaluate_split
from seglab.engine.performance import latency_ms
from seglab.engine.segmenter import Segmenter, checkpoint_segmenter
from seglab.errors import SeglabError, first_line
from seglab.reporting.results import FormResult

LATENCY_REPEATS = 10


@dataclass(frozen=True)
class Source:
    """One compared model, ready to be built into its forms: its run's ``name``, checkpoint
    (loaded, and its file), the ``folder`` its exported files go to, the training images that
    calibrate INT8 and the input ``size`` a fixed-size form is lowered for."""

    name: str
    checkpoint: Checkpoint
    path: Path
    folder: Path
    calibration: Sequence[torch.Tensor]
    size: tuple[int, int]


@dataclass(frozen=True)
class Form:
    name: str  # "pytorch", or the export format (seglab export --format)
    description: str
    build: Callable[[Source], Segmenter]  # on the CPU, writing the form's file first
    file: Callable[[Source], Path]  # the file it runs from, once built


def _pytorch(source: Source) -> Segmenter:
    return checkpoint_segmenter(source.checkpoint, "cpu", precision="fp32", name=source.name)


def _exported(format: Format) -> Form:
    """The form of an export format, built as the benchmark builds its backend."""

    def build(source: Source) -> Segmenter:
        source.folder.mkdir(parents=True, exist_ok=True)
        model = source.checkpoint.build_model(str(source.path))
        info, calibration = source.checkpoint.dataset, source.calibration
        return backend_segmenter(
            format.backend, model, info, source.folder, calibration=calibration, size=source.size
        )

    return Form(format.name, format.description, build, lambda s: s.folder / format.file_name)


PYTORCH = Form(
    "pytorch",
    "the checkpoint in PyTorch, fp32, the run's memory format",
    _pytorch,
    lambda source: source.path,
)
FORMS = (PYTORCH, *(_exported(format) for format in FORMATS.values()))


def chosen_forms(names: Sequence[str] | None) -> tuple[Form, ...]:
    """The forms named (compare --forms), in FORMS' order, the PyTorch form always among them
    (the comparison's own evaluation); None: every form. A name not in FORMS is one line."""
    if names is None:
        return FORMS
    known = {form.name: form for form in FORMS}
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SeglabError(f"compare: --forms {name!r}: choose from {', '.join(known)}{hint}")
    return tuple(form for form in FORMS if form is PYTORCH or form.name in names)


def measure_forms(
    source: Source,
    data: Data,
    split: str,
    pytorch_evaluation: Evaluation,
    progress: bool = False,
    report: Callable[[str], None] = print,
    repeats: int = LATENCY_REPEATS,
    forms: Sequence[Form] | None = None,
) -> tuple[list[tuple[FormResult, np.ndarray]], dict[str, str]]:
    """``source`` in each of ``forms`` (default: every form of FORMS): (its measurements, its
    per-image confusion matrices) for each, and {form: why} for those that cannot be built
    here (reported). The PyTorch form's scores are ``pytorch_evaluation`` (the comparison's
    own); the others are evaluated on the same images of ``split``. Latency (the median of
    ``repeats`` runs) and memory (each form in a fresh process, after every form is timed) at
    ``source.size``."""
    sample = torch.rand(1, source.checkpoint.spec.in_channels, *source.size)
    timed, unavailable = [], {}
    for form in FORMS if forms is None else forms:
        try:
            segmenter = form.build(source)
        except Exception as err:  # a form this machine cannot build is reported, not fatal
            if form is PYTORCH:
                raise
            unavailable[form.name] = first_line(err)[:160]
            report(f"{source.name} as {form.name}: not available here ({unavailable[form.name]})")
            continue
        evaluation = pytorch_evaluation
        if form is not PYTORCH:
            options = EvalOptions(batch_size=source.checkpoint.config.batch_size)
            evaluation = evaluate_split(
                segmenter, data, split, options, progress=progress, per_image=True
            )
        median, p90 = latency_ms(time_segmenter(segmenter, sample, repeats))
        del segmenter
        timed.append((form, evaluation, median, p90))
    files = [form.file(source) for form, *_ in timed]
    memory = peak_inference_memories(files, source.size, precision="fp32")
    measured = []
    for (form, evaluation, median, p90), (peak, baseline) in zip(timed, memory):
        result = FormResult(
            model=source.name,
            form=form.name,
            miou=evaluation.metrics["miou"],
            latency_ms=median,
            latency_p90_ms=p90,
            peak_memory_mb=peak,
            model_memory_mb=peak - baseline,
        )
        measured.append((result, evaluation.confusions))
    return measured, unavailable
