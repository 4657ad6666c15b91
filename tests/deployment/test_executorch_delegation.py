"""The ExecuTorch programs run whole in XNNPACK: the decoder's nearest upsampling, which XNNPACK
does not take, is lowered as its exact equivalent (CopyUpsample), and the card says how the
program runs, read from the program."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seglab.deployment.artifacts import read_card
from seglab.deployment.card import DeploymentCard, describe_delegation
from seglab.deployment.formats.executorch_xnnpack import (
    ExecuTorchSegmenter,
    delegation,
    lower,
)
from seglab.models.unet import CopyUpsample, NearestUpsample

WHOLE = {"partitions": 1, "backends": ["XnnpackBackend"], "portable_calls": 0}


class Upsampler(nn.Module):
    """An upsampling alone, to ``size``, as the decoder runs it."""

    def __init__(self, upsample: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.upsample, self.size = upsample, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x, self.size)


def _program(module: nn.Module, shape: tuple[int, ...], tmp_path, name: str):
    path = tmp_path / f"{name}.pte"
    with torch.no_grad():
        path.write_bytes(lower(torch.export.export(module.eval(), (torch.rand(*shape),))))
    return path


def test_xnnpack_runs_copy_upsampling_and_gives_nearest_exactly(tmp_path):
    """To twice the size, and to odd sizes, one less or one more than twice (the skips of
    encoders that round up, and of those that round down)."""
    cases = (((1, 4, 9, 10), (18, 20)), ((1, 6, 12, 15), (23, 29)), ((1, 6, 12, 15), (25, 31)))
    for shape, size in cases:
        path = _program(Upsampler(CopyUpsample(), size), shape, tmp_path, f"copy{size}")
        assert delegation(path.read_bytes(), path) == {**WHOLE, "portable_operators": []}
        program = ExecuTorchSegmenter(path, None, shape[-2:])
        x = torch.randn(*shape)
        assert torch.equal(program(x), F.interpolate(x, size=size, mode="nearest"))


def test_nearest_interpolation_is_left_to_a_portable_kernel(tmp_path):
    """Why the copy exists: XNNPACK takes no nearest resize."""
    path = _program(Upsampler(NearestUpsample(), (23, 29)), (1, 6, 12, 15), tmp_path, "nearest")
    found = delegation(path.read_bytes(), path)
    assert found["partitions"] == 0 and found["portable_calls"] == 1
    assert found["portable_operators"] == ["aten::upsample_nearest2d"]


def test_the_fp32_program_is_one_xnnpack_partition_and_its_card_says_so(exported):
    path, card, _ = exported("executorch")
    assert card.delegation == {**WHOLE, "portable_operators": []}
    assert read_card(path).delegation == card.delegation
    assert "graph: 1 XnnpackBackend partition, nothing outside it" in card.summary_lines()
    assert "- graph: 1 XnnpackBackend partition, nothing outside it" in card.to_markdown("m")
    assert card.measured.max_logit_diff < 1e-4  # the copy changes nothing


def test_cards_without_delegation_still_read(exported):
    d = exported("onnx")[1].to_dict()
    assert d["delegation"] is None  # not an ExecuTorch program
    del d["delegation"]  # a card of an older seglab
    assert DeploymentCard.from_json(json.dumps(d), "old").delegation is None


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (
            {"partitions": 6, "backends": ["XnnpackBackend"], "portable_calls": 5,
             "portable_operators": ["aten::upsample_nearest2d"]},
            "6 XnnpackBackend partitions, 5 portable kernel calls (aten::upsample_nearest2d)",
        ),
        (
            {"partitions": 0, "backends": [], "portable_calls": 1,
             "portable_operators": ["aten::upsample_nearest2d"]},
            "no delegated partition, 1 portable kernel call (aten::upsample_nearest2d)",
        ),
    ],
)  # fmt: skip
def test_delegation_in_words(found, words):
    assert describe_delegation(found) == words
