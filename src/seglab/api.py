"""seglab in Python: the command line's equal, for scripts and notebooks.

    import seglab

    report = seglab.check("my_data/")  # as `seglab data check`: problems, bands, the recipe
    run = seglab.train(data="my_data/", encoder="mobilenet_v2")  # as `seglab train`
    model = seglab.load("runs/mobilenet_v2")  # a run folder, a checkpoint or an exported file
    masks = model.predict(["photo.jpg", pil_image, array])  # class indices, one array each
    metrics = model.evaluate(flip=True)  # as `seglab evaluate`
    onnx = model.export("onnx", "model.onnx")  # as `seglab export`, card included
    onnx.verify(), onnx.benchmark()  # as `seglab verify` and `seglab benchmark`
    comparison = seglab.compare(runs=["runs/a", "runs/b"])  # as `seglab compare --runs`

Each function takes what its command takes, checks it the same way and calls the same library
function, so nothing is done here that the command line does differently (`seglab data check`
prints :func:`check`'s result). Results are returned, never printed: what `seglab train` prints is
``Run.log`` (printed too with ``verbose=True``), progress bars show as in the command line, and
what a person must know (a useless or undertrained model, a budget too short, an export outside
its tolerances) is a SeglabWarning. Results show themselves as HTML in Jupyter.
"""

from __future__ import annotations

import dataclasses
import html
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from seglab.config import check_device, check_values, load_config, parse_scales, parse_size
from seglab.data.check import CheckReport, format_report
from seglab.data.dataset import Data, open_data
from seglab.data.fingerprint import Fingerprint, fingerprint, format_fingerprint
from seglab.data.info import DatasetInfo
from seglab.deployment.artifacts import (
    CALIBRATION_IMAGES,
    load_segmenter,
    metrics_record,
    record_warnings,
)
from seglab.deployment.benchmark import BenchmarkResult, benchmark_model
from seglab.deployment.card import DeploymentCard
from seglab.deployment.export import export_artifact
from seglab.deployment.measure import LATENCY_REPEATS, evaluate_model
from seglab.deployment.predict import ImageInput, input_image, predict_images
from seglab.deployment.verify import Verification, verify_artifact
from seglab.engine.evaluate import EvalOptions
from seglab.engine.run_folder import default_run_folder, model_file
from seglab.engine.segmenter import Segmenter
from seglab.engine.train import resume_config
from seglab.engine.train import train as train_model
from seglab.errors import SeglabError, SeglabWarning
from seglab.formatting import format_metrics, html_table, metrics_html, percent
from seglab.reporting import results
from seglab.reporting.budget import LATENCY_UNITS, MEMORY_UNITS, Budget, parse_quantity
from seglab.reporting.compare import compare as compare_models
from seglab.reporting.compare import with_demo_schedule
from seglab.reporting.report import difference_lines, headline, summary_table, verdict_lines
from seglab.reporting.review import review
from seglab.reporting.verdict import margin_fraction

__all__ = [
    "Comparison",
    "DataCheck",
    "Metrics",
    "Model",
    "Run",
    "check",
    "compare",
    "load",
    "train",
]
# What Model.predict gives for one image: class indices, with the probabilities when asked.
Prediction = np.ndarray | tuple[np.ndarray, np.ndarray]


# --- data ---------------------------------------------------------------------------------------


def check(data: str | os.PathLike, progress: bool = True) -> DataCheck:
    """``seglab data check``: ``data`` (a folder, a dataset YAML or ``synthetic``) read and
    checked as training would read it (every file decoded once, the result cached per file);
    the :class:`DataCheck` holds the problems, the per-split facts and, for a dataset that can
    be trained on, the fingerprint the recipe would be chosen from."""
    found = open_data(os.fspath(data), progress=progress)
    return DataCheck(os.fspath(data), found, None if found.problems else fingerprint(found))


@dataclass(frozen=True, repr=False)
class DataCheck:
    """What the data check found: ``problems`` (none: training can start), ``report`` (per
    split: images, sizes, bands, classes, statistics; None for generated data) and
    ``fingerprint`` (None when there are problems). ``str()`` is the command line's text."""

    name: str
    data: Data
    fingerprint: Fingerprint | None

    @property
    def report(self) -> CheckReport | None:
        return self.data.report

    @property
    def problems(self) -> list[str]:
        return list(self.data.problems)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        if self.report is None:
            classes = self.data.info.num_classes
            found = [f"{self.name}: generated by seglab, {classes} classes; nothing to check"]
        else:
            found = format_report(self.report).splitlines()
        return found + (format_fingerprint(self.fingerprint) if self.fingerprint else [])

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.problems)} problems"
        return f"DataCheck({self.name!r}: {state})"

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


# --- training -----------------------------------------------------------------------------------


def train(
    data: str | os.PathLike | None = None,
    encoder: str | None = None,
    config: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    verbose: bool = False,
    **options: Any,
) -> Run:
    """``seglab train``: a U-Net trained as the options say; returns the finished :class:`Run`.

    Every training option is a keyword (``iterations=500``, ``crop_size=(256, 256)`` or
    ``"256x256"``, ``time_budget="10m"``, ``progress=False``; see ``seglab train --help``), and
    ``config`` is a YAML experiment file that the keywords override. Defaults, checks and errors
    are the command line's: a bad value or a misspelt option is a one-line SeglabError (with a
    suggestion) before anything is written. An option left out or None is not given: without
    ``config``, the dataset's fingerprint then chooses the recipe options (``auto``: crop size,
    batch size, schedule, loss, ...; ``auto="none"`` keeps the plain defaults), and a run folder
    is taken as the command line takes it (``runs/ENCODER``, ``-2``, ``-3``, ...) unless
    ``out`` names one. ``resume`` continues an interrupted run folder (or extends a finished
    one with ``iterations``, ``epochs`` or ``time_budget``), as ``seglab train --resume``.

    What ``seglab train`` prints (the recipe and why, the set-up, each validation, the summary)
    is returned as ``Run.log``, and printed as well with ``verbose``; its warnings (an
    undertrained or useless model, a budget too short) are SeglabWarnings. Progress bars follow
    ``progress`` (default on)."""
    given = _given({"data": data, "encoder": encoder, **options})
    check_values(given, "seglab.train")  # in Python's spelling first: batch_size, not --batch-size
    said: list[str] = []

    def log(text: str) -> None:
        said.append(text)
        if verbose:
            tqdm.write(text)
        elif text.startswith("warning: "):  # what a person must know, even when not printed
            warnings.warn(text.removeprefix("warning: "), SeglabWarning, stacklevel=2)

    if resume is not None:
        if config is not None:
            raise SeglabError("--resume continues a run as it was configured; give no --config")
        folder = Path(resume)
        best = train_model(resume_config(folder, given), resume=folder, log=log)
    else:
        settings = load_config(config, given)  # then the command line's path, defaults and auto
        folder = Path(settings.out) if settings.out else default_run_folder(settings.encoder)
        best = train_model(dataclasses.replace(settings, out=str(folder)), log=log)
    return Run(folder, Metrics(best, f"{folder.name}: best validation"), tuple(said))


def _given(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options given (None: not given), paths as text, as the command line passes them."""
    return {
        name: os.fspath(value) if isinstance(value, os.PathLike) else value
        for name, value in options.items()
        if value is not None
    }


@dataclass(frozen=True)
class Run:
    """A finished training run: its ``folder`` (config.yaml, metrics.csv, metrics.json, best.pt,
    last.pt), ``metrics``, those of its best validation (what metrics.json holds), and ``log``,
    what ``seglab train`` would have printed, line by line."""

    folder: Path
    metrics: Metrics
    log: tuple[str, ...] = ()

    @cached_property
    def model(self) -> Model:
        """The run's model (best.pt, else last.pt), loaded on first use."""
        return load(self.folder)

    def _repr_html_(self) -> str:
        folder = f"<p>run folder <code>{html.escape(str(self.folder))}</code></p>"
        return f"<div>{folder}{self.metrics._repr_html_()}</div>"


# --- scores -------------------------------------------------------------------------------------


class Metrics(Mapping[str, Any]):
    """Scores as seglab records them, read like the dict of a metrics JSON file (fractions, not
    percent): ``metrics["miou"]``, ``metrics["per_class"]["car"]["iou"]``, the confusion matrix;
    ``miou`` and ``iou`` (per class) as attributes. ``print`` shows the command line's per-class
    table, Jupyter the same as HTML."""

    def __init__(self, record: Mapping[str, Any], title: str = ""):
        self._record, self.title = dict(record), title

    def __getitem__(self, key: str) -> Any:
        return self._record[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._record)

    def __len__(self) -> int:
        return len(self._record)

    @property
    def miou(self) -> float | None:
        return self._record.get("miou")

    @property
    def iou(self) -> dict[str, float | None]:
        """Each class's IoU (None: absent from truth and prediction)."""
        return {name: s["iou"] for name, s in self._record.get("per_class", {}).items()}

    def to_dict(self) -> dict[str, Any]:
        return dict(self._record)

    def __str__(self) -> str:
        return format_metrics(self._record) if self._record else "no validation ran"

    def __repr__(self) -> str:
        if not self._record:
            return "Metrics(no validation ran)"
        return f"Metrics(mIoU {percent(self.miou)}%, {len(self.iou)} classes)"

    def _repr_html_(self) -> str:
        if not self._record:
            return "<p>no validation ran</p>"
        return metrics_html(self._record, self.title)


# --- models -------------------------------------------------------------------------------------


def load(path: str | os.PathLike, device: str = "auto") -> Model:
    """A trained model: a run folder (its best.pt, else last.pt), a checkpoint (.pt, run by
    PyTorch on ``device``: auto, cpu, cuda or cuda:N) or a file written by ``seglab export``
    (.onnx, .pte; on the CPU, under the input policy its card states)."""
    path = model_file(Path(path), "load")
    check_device(device, "load: device")
    segmenter = load_segmenter(path, device)
    return Model(path, segmenter, metrics_record(path))


class Model:
    """A trained model, as :func:`load` gives it: ``predict`` (as ``seglab predict``),
    ``evaluate`` (as ``seglab evaluate``) and ``export`` (as ``seglab export``). ``record``: the
    metrics record that speaks for it (its training's best validation; {} when none does);
    ``warnings``: what that record says a person must know before trusting it (useless,
    undertrained)."""

    def __init__(self, path: Path, segmenter: Segmenter, record: Mapping[str, Any]):
        self.path, self.segmenter, self.record = Path(path), segmenter, dict(record)
        self.warnings = tuple(record_warnings(str(self.path), self.record))

    @property
    def info(self) -> DatasetInfo:
        """Its classes, their colours, its input channels and ignore index."""
        return self.segmenter.info

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def card(self) -> DeploymentCard | None:
        """The deployment card of an exported file; None for a checkpoint."""
        return getattr(self.segmenter, "card", None)

    @property
    def form(self) -> str:
        """What runs it: "checkpoint" (PyTorch), or an export format (onnx, onnx-int8, ...)."""
        return self.card.format if self.card else "checkpoint"

    @property
    def encoder(self) -> str:
        spec = self.card.spec if self.card else self.segmenter.module.spec
        return spec.encoder

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        probabilities: bool = False,
        *,
        batch_size: int = 4,
        window: tuple[int, int] | str | None = None,
        flip: bool = False,
        progress: bool = False,
    ) -> Prediction | list[Prediction]:
        """The class indices of each image at its own size (H x W uint8 arrays), computed as
        ``seglab predict`` computes its PNGs. ``images``: one image or a list of them, each a
        path, a Pillow image, a NumPy array (H x W or H x W x C) or a tensor (C x H x W), read
        as a file of its type is (uint8 0-255, uint16 0-65535, float as it is); one image gives
        one array, a list a list. With ``probabilities``,
        each result is (classes, K x H x W float32 class probabilities). ``window`` (e.g.
        512x512) runs sliding-window inference, ``flip`` averages with the mirror image."""
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        tensors = [input_image(item, self.info.in_channels) for item in items]
        for line in self.warnings:  # before any prediction, as seglab predict says them
            warnings.warn(line, SeglabWarning, stacklevel=2)
        found = predict_images(
            self.segmenter,
            tensors,
            batch_size=batch_size,
            window=parse_size(window, "predict: window") if window else None,
            flip=flip,
            progress=progress,
        )
        answers = [self._answer(p, probabilities) for p in found]
        return answers[0] if single else answers

    def _answer(self, probs: torch.Tensor, probabilities: bool) -> Prediction:
        dtype = np.uint8 if len(self.classes) <= 256 else np.int64
        classes = probs.argmax(0).numpy().astype(dtype)
        return (classes, probs.numpy()) if probabilities else classes

    def evaluate(
        self,
        data: str | os.PathLike | None = None,
        split: str = "val",
        *,
        flip: bool = False,
        scales: Sequence[float] | str | None = None,
        window: tuple[int, int] | str | None = None,
        batch_size: int | None = None,
        workers: int | str = "auto",
        threads: int | str = "auto",
        progress: bool = True,
    ) -> Metrics:
        """``seglab evaluate``: the model scored on ``split`` of ``data`` (default: the dataset
        it was trained on) at the original resolution; the same numbers as the command line's
        JSON. Test-time augmentation: ``flip``, ``scales`` (e.g. (0.75, 1, 1.25)), a sliding
        ``window``; ``batch_size`` None is the run's own (1 for an exported file). ``workers``
        and ``threads`` (torch's, put back afterwards): "auto" chooses them from the free cores,
        as the command line does."""
        if scales is not None and not isinstance(scales, str):
            scales = ",".join(str(s) for s in scales)  # checked as --scales is
        options = EvalOptions(
            flip=flip,
            scales=parse_scales(scales, "evaluate: scales") if scales is not None else (1.0,),
            window=parse_size(window, "evaluate: window") if window else None,
            batch_size=batch_size,
            **check_values({"workers": workers, "threads": threads}, "evaluate"),
        )
        data = os.fspath(data) if data is not None else None
        device = str(self.segmenter.device)
        scores = evaluate_model(self.path, data, split, options, device=device, progress=progress)
        # useless on these images (as this evaluation found), undertrained (as training ended)
        useless = scores.get("degenerate")
        said = [f"{self.path} is a useless model on {split}: it {useless}"] if useless else []
        said += record_warnings(str(self.path), {"undertrained": self.record.get("undertrained")})
        for line in said:
            warnings.warn(line, SeglabWarning, stacklevel=2)
        return Metrics(scores, f"{self.path.parent.name}/{self.path.name} on {split}")

    def review(
        self,
        data: str | os.PathLike,
        out: str | os.PathLike,
        *,
        unlabelled: str | os.PathLike | None = None,
        splits: Sequence[str] | None = None,
        top: int = 20,
        progress: bool = False,
    ):
        """As ``seglab data review``: the labelled images of ``data`` ranked by how likely their
        mask is wrong and, with ``unlabelled`` (a folder), those images in the order to label
        them; writes ``out``/review.json and review.html and returns the review
        (seglab.reporting.review.Review)."""
        device = str(self.segmenter.device)
        return review(
            self.path,
            str(data),
            out,
            unlabelled=unlabelled,
            splits=splits,
            top=top,
            device=device,
            progress=progress,
        )

    def export(
        self,
        format: str,
        path: str | os.PathLike,
        *,
        data: str | os.PathLike | None = None,
        limit: int | None = None,
        calibration: int = CALIBRATION_IMAGES,
        size: tuple[int, int] | str | None = None,
        repeats: int = LATENCY_REPEATS,
        overwrite: bool = False,
        progress: bool = True,
    ) -> Model:
        """``seglab export``: this checkpoint written to ``path`` in ``format`` (onnx, onnx-int8,
        executorch, executorch-int8), measured against PyTorch on its data and timed here; the
        card goes into the file and beside it. Returns the exported model; a tolerance it
        breaks is a SeglabWarning."""
        if self.card is not None:
            raise SeglabError(
                f"export: {self.path} is already an exported {self.form} model; export the "
                "checkpoint it came from"
            )
        exported = export_artifact(
            self.path,
            path,
            format,
            data=os.fspath(data) if data is not None else None,
            limit=limit,
            calibration=calibration,
            size=parse_size(size, "export: size") if size else None,
            repeats=repeats,
            overwrite=overwrite,
            report=tqdm.write if progress else _quiet,
            progress=progress,
        )
        for failure in exported.card.failures:
            warnings.warn(
                f"{exported.path}: outside tolerance: {failure}", SeglabWarning, stacklevel=2
            )
        return load(exported.path)

    def verify(
        self,
        data: str | os.PathLike | None = None,
        *,
        limit: int | None = None,
        repeats: int | None = None,
        progress: bool = True,
    ) -> Verification:
        """``seglab verify``: this exported model re-measured here and held to its deployment
        card (content, mIoU drift, parity with PyTorch); ``passed`` says whether it held, and
        each failed check is a line of ``failures`` (and a SeglabWarning)."""
        if self.card is None:
            raise SeglabError(
                f"verify: {self.path} is a checkpoint; verify checks an exported file against "
                "its card (export it first)"
            )
        found = verify_artifact(
            self.path,
            data=os.fspath(data) if data is not None else None,
            limit=limit,
            repeats=repeats,
            report=tqdm.write if progress else _quiet,
            progress=progress,
        )
        for failure in found.failures:
            warnings.warn(f"{self.path}: verify failed: {failure}", SeglabWarning, stacklevel=2)
        return found

    def benchmark(
        self,
        backends: Sequence[str] | None = None,
        *,
        size: tuple[int, int] | str | None = None,
        batch: int = 1,
        repeats: int = 20,
        data: str | os.PathLike | None = None,
        limit: int | None = None,
    ) -> BenchmarkResult:
        """``seglab benchmark``: this model timed on this machine's CPU at batch ``batch`` (a
        checkpoint in every backend by default, an exported file as itself beside eager
        PyTorch), with each one's mIoU when its data is here; ``table()`` gives the rows."""
        return benchmark_model(
            self.path,
            backends=backends,
            size=parse_size(size, "benchmark: size") if size else None,
            batch=batch,
            repeats=repeats,
            data=os.fspath(data) if data is not None else None,
            limit=limit,
            report=_quiet,
        )

    def __repr__(self) -> str:
        return (
            f"Model({str(self.path)!r}: {self.form}, {self.encoder}, {len(self.classes)} classes)"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("form", "PyTorch checkpoint" if self.card is None else f"exported: {self.form}"),
            ("encoder", f"U-Net on {self.encoder}"),
            ("classes", f"{len(self.classes)}: {', '.join(self.classes)}"),
            ("input", f"{self.info.in_channels} channels"),
            ("trained on", self.info.name),
            ("runs on", str(self.segmenter.device)),
        ]
        if "miou" in self.record:
            rows.append(("validation mIoU", f"{percent(self.record['miou'])}%"))
        rows += [("card", line) for line in (self.card.summary_lines() if self.card else [])]
        notes = "".join(
            f"<p style='color:#a00'>warning: {html.escape(line)}</p>" for line in self.warnings
        )
        return f"<div>{html_table(('model', str(self.path)), rows)}{notes}</div>"


def _quiet(line: str) -> None:
    """Progress lines nobody asked for."""


def _warnings_only(line: str) -> None:
    """Of what a command would print, the warnings, as SeglabWarnings."""
    if line.startswith("warning: "):
        warnings.warn(line.removeprefix("warning: "), SeglabWarning, stacklevel=2)


# --- comparing ----------------------------------------------------------------------------------


def compare(
    encoders: Sequence[str] | str = ("vgg19", "mobilenet_v2"),
    runs: Sequence[str | os.PathLike] | None = None,
    *,
    data: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    out: str | os.PathLike = "runs/compare",
    split: str = "val",
    examples: int = 6,
    budget: str | float | None = None,
    memory: str | float | None = None,
    export: str | os.PathLike | None = None,
    seeds: int = 1,
    folds: int = 0,
    margin: float = 1.0,
    forms: Sequence[str] | None = None,
    verbose: bool = False,
    **options: Any,
) -> Comparison:
    """``seglab compare``: one U-Net per encoder trained the same way (every training option as
    in :func:`train`, ``seeds`` and ``folds`` for repeats), or the finished ``runs``, evaluated
    on the same images and measured in every deployable form; the verdict chooses within
    ``budget`` (latency: "50ms", "0.2s"; a number is ms) and ``memory`` ("300MB", "1.5GB"; a
    number is MB), counting ``margin`` mIoU points as equal; ``forms`` names the deployable
    forms to measure (default: all; e.g. ("pytorch", "onnx-int8")). Writes OUT/report.html,
    report.md and results.json, as the command line does, and returns the :class:`Comparison`.
    What the command line prints on the way (each run's training log, each model measured) is
    printed with ``verbose``; its warnings are SeglabWarnings either way."""
    if "encoder" in options:
        raise SeglabError("compare: give encoders=[...] (the models to compare), not encoder")
    given = _given({"data": data, **options})
    check_values(given, "seglab.compare")  # in Python's spelling first, as in train
    settings = load_config(config, with_demo_schedule(given, config, runs))
    names = encoders.split(",") if isinstance(encoders, str) else list(encoders)
    found = compare_models(
        settings,
        None if runs else [name.strip() for name in names if name.strip()],
        [os.fspath(run) for run in runs] if runs else None,
        out,
        split,
        examples,
        budget=Budget(
            _amount(budget, LATENCY_UNITS, "budget", "50ms or 0.2s"),
            _amount(memory, MEMORY_UNITS, "memory", "300MB or 1.5GB"),
        ),
        export=export,
        seeds=seeds,
        folds=folds,
        margin=margin_fraction(margin),
        forms=forms,
        report=tqdm.write if verbose else _warnings_only,
    )
    return Comparison(found, Path(out))


def _amount(
    value: str | float | None, units: dict[str, float], name: str, example: str
) -> float | None:
    """A budget as the command line's flag takes it (a bare number in the first unit)."""
    if value is None:
        return None
    return parse_quantity(str(value), units, f"compare: {name}", example)


@dataclass(frozen=True, repr=False)
class Comparison:
    """What :func:`compare` found: ``result`` holds every number (what results.json holds),
    ``folder`` the reports; ``verdict`` is the verdict in words, as the command line prints
    it."""

    result: results.Comparison
    folder: Path

    @property
    def verdict(self) -> list[str]:
        return verdict_lines(self.result)

    @property
    def report(self) -> Path:
        """The HTML report, one self-contained file."""
        return self.folder / "report.html"

    def __repr__(self) -> str:
        names = ", ".join(model.name for model in self.result.models)
        return f"Comparison({names}; report {self.report})"

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [f"<p><b>{esc(line)}</b></p>" for line in headline(self.result)]
        if self.verdict:
            items = "".join(f"<li>{esc(line)}</li>" for line in self.verdict)
            parts.append(f"<p>Verdict:</p><ul>{items}</ul>")
        parts.append(html_table(*summary_table(self.result)))
        parts += [f"<p>{esc(line)}</p>" for line in difference_lines(self.result)]
        parts.append(f"<p>report: <code>{esc(str(self.report))}</code></p>")
        return f"<div>{''.join(parts)}</div>"
