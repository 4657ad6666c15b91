"""Constructed results for the reporting tests: models, forms and comparisons built by hand, so a
test sets exactly the numbers it needs, with no training or measuring."""

from seglab.config import TrainConfig
from seglab.reporting.report import FIGURES
from seglab.reporting.results import (
    Bootstrap,
    Comparison,
    Cost,
    FormResult,
    ModelResult,
    RunResult,
    Setup,
)

MACHINE = {  # as seglab.deployment.card.machine_description() records it
    "cpu": "AMD EPYC 9R14",
    "architecture": "x86_64",
    "flags": ["avx2", "avx512_bf16"],
    "cores": 2,
    "torch_threads": 2,
    "system": "Linux",
    "versions": {"python": "3.12", "torch": "2.14.1"},
}


def model(
    name,
    ious,
    *,
    flags=(),
    options=None,
    steps=(None, None),
    seeds=(),
    weights=("random initialisation", ""),
):
    """A model result with these per-class IoUs (None: absent), flags and recorded options;
    ``seeds``: one run's mIoU per seed (none: runs not recorded); ``weights``: (the encoder
    weights it started from, those requested)."""
    per_class = {c: {"iou": v, "dice": v, "accuracy": v, "pixels": 10} for c, v in ious.items()}
    present = [v for v in ious.values() if v is not None]
    return ModelResult(
        name=name,
        encoder="mobilenet_v2",
        metrics={
            "miou": sum(present) / len(present),
            "pixel_accuracy": 0.5,
            "mean_class_accuracy": 0.5,
            "per_class": per_class,
            "absent_classes": [c for c, v in ious.items() if v is None],
        },
        cost=Cost(6.6, 0.5, 10.0, 11.0, 100.0, 900.0, 90.0, None, "fp32"),
        history=[],
        setup=Setup(
            f"runs/{name}",
            f"runs/{name}/best.pt",
            weights[0],
            "3 steps",
            options=TrainConfig().to_dict() if options is None else options,
            steps_done=steps[0],
            planned_steps=steps[1],
            weights_requested=weights[1],
        ),
        flags=list(flags),
        runs=[
            RunResult(f"runs/{name}/seed{seed}", seed, None, miou, steps_done=100)
            for seed, miou in enumerate(seeds)
        ],
    )


def form(model_name, form_name, miou, latency_ms, memory_mb=100.0):
    return FormResult(model_name, form_name, miou, latency_ms, latency_ms * 1.1, 700.0, memory_mb)


def comparison(models=None, forms=(), verdict=None, no_verdict=None):
    """Two runs of the same encoder (a/ and b/mobilenet_v2), b ahead by 12.5 points with an
    interval that excludes 0, unless ``models`` are given."""
    if models is None:
        a = model("a/mobilenet_v2", {"sky": 0.5, "road": 0.25, "sign": None})
        b = model("b/mobilenet_v2", {"sky": 0.75, "road": 0.25, "sign": None})
        models = [a, b]
    for m in models[1:]:
        m.versus_first = m.versus_first or Bootstrap(0.125, 0.05, 0.2, 0.95, 0.99, 2000, 8)
    return Comparison(
        list(models),
        "synthetic",
        "val",
        8,
        (64, 80),
        tuple(models[0].metrics["per_class"]),
        MACHINE,
        "0.1.0",
        forms=list(forms),
        calibration_images=8,
        verdict=verdict,
        no_verdict=no_verdict,
    )


def fake_figures(folder):
    """The report's figures as stand-in PNG files."""
    figures = {}
    for key, _ in FIGURES:
        figures[key] = folder / f"{key}.png"
        figures[key].write_bytes(b"\x89PNG")
    return figures
