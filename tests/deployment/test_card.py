"""The deployment card as a record: its JSON round trip, the one-line errors of a damaged or
newer card, the tolerances it is held to, and the Markdown a person reads."""

import json

import pytest

from seglab.data.synthetic import INFO
from seglab.deployment.card import DeploymentCard, InputPolicy, Measurement, Tolerances
from seglab.errors import SeglabError
from seglab.models.unet import ModelSpec

SPEC = ModelSpec("mobilenet_v2", INFO.num_classes)
MEASURED = Measurement(
    data="syn.yaml",
    split="val",
    images=8,
    size=(64, 80),
    miou=0.418,
    latency_ms=12.5,
    latency_p90_ms=14.0,
    repeats=10,
    machine={"cpu": "a CPU", "flags": ["avx2"], "cores": 2, "versions": {"torch": "2"}},
    miou_pytorch=0.42,
    max_logit_diff=2e-4,
    changed_pixels_percent=0.5,
    parity_images=4,
    pytorch_latency_ms=50.0,
)
TOLERANCES = Tolerances(0.5, 0.25, 5.0, None)


def card(**changes) -> DeploymentCard:
    values = dict(
        format="onnx-int8",
        info=INFO,
        spec=SPEC,
        input=InputPolicy((64, 80), fixed=False),
        normalisation={"mean": [0.5] * 3, "std": [0.25] * 3},
        source={"checkpoint": "runs/x/best.pt", "sha256": "ab" * 32, "step": 7},
        content_sha256="cd" * 32,
        tolerances=TOLERANCES,
        measured=MEASURED,
    )
    return DeploymentCard(**{**values, **changes})


def test_the_json_round_trip_keeps_every_field():
    original = card()
    again = DeploymentCard.from_json(original.to_json(), "m.onnx")
    assert again == original
    assert again.measured.miou_drop_points == pytest.approx(0.2)
    assert again.measured.speedup == pytest.approx(4.0)


def test_damaged_or_newer_cards_are_one_line():
    with pytest.raises(SeglabError, match=r"^m.onnx: damaged seglab metadata"):
        DeploymentCard.from_json("{not json", "m.onnx")
    with pytest.raises(SeglabError, match=r"^m.onnx: damaged seglab metadata"):
        DeploymentCard.from_json(json.dumps({"seglab_card": 1}), "m.onnx")
    newer = {**card().to_dict(), "seglab_card": 99}
    with pytest.raises(SeglabError, match=r"m.onnx needs a newer seglab \(card version 99\)"):
        DeploymentCard.from_json(json.dumps(newer), "m.onnx")


def test_an_older_input_policy_means_any_size():
    assert InputPolicy.from_dict("any batch and size") == InputPolicy(None, False)
    fixed = InputPolicy((64, 80), fixed=True)
    assert InputPolicy.from_dict(fixed.to_dict()) == fixed
    assert "padded" in fixed.describe() and "any batch" in InputPolicy((1, 2)).describe()


def test_tolerances_name_each_bound_broken():
    assert TOLERANCES.failures(MEASURED) == []
    worse = Measurement(**{**MEASURED.__dict__, "miou": 0.40, "changed_pixels_percent": 6.0})
    failures = TOLERANCES.failures(worse)
    assert len(failures) == 2
    assert failures[0].startswith("mIoU 2.00 points below PyTorch fp32 (tolerance 0.5)")
    assert "6.000% of pixels change class" in failures[1]
    fp32 = Tolerances(0.05, 0.05, 0.1, 1e-3)
    assert fp32.failures(Measurement(**{**MEASURED.__dict__, "max_logit_diff": 0.1}))[-1] == (
        "largest logit difference to PyTorch fp32 1.00e-01 (tolerance 1e-03)"
    )
    unchecked = {"miou_pytorch": None, "changed_pixels_percent": None}
    alone = Measurement(**{**MEASURED.__dict__, **unchecked})
    assert TOLERANCES.failures(alone) == []  # nothing to hold against without PyTorch's figures


def test_markdown_and_summary_show_what_a_person_needs():
    text = card().to_markdown("model.int8.onnx")
    assert text.startswith("# Deployment card: model.int8.onnx")
    for k, name in enumerate(INFO.classes):
        assert f"| {k} | {name} |" in text
    assert "| mIoU, onnx-int8 | 41.80 | |" in text and "| mIoU drop (points) | 0.20 | 0.5 |" in text
    assert "not bounded" in text and "Within tolerance." in text
    lines = card().summary_lines()
    assert lines[1] == "mIoU on 8 val images: 41.80 (PyTorch fp32 42.00, drop 0.20 points)"
    assert "4.00x PyTorch fp32's" in lines[-1] and "a CPU (avx2)" in lines[-1]
    bare = card(measured=None, tolerances=None).summary_lines()
    assert bare == ["format: onnx-int8; input: any batch and size (measured at 64x80)"]
