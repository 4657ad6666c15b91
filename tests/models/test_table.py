import subprocess
import sys

import torch

from seglab.cache import torch_hub_checkpoints
from seglab.models import ENCODERS
from seglab.models.complexity import model_costs
from seglab.models.table import encoder_table


def test_the_table_holds_every_encoder_with_its_costs(seglab_cache):
    rows = encoder_table(64, 96, 5)
    assert [r["encoder"] for r in rows] == list(ENCODERS)
    for row in rows:
        assert (row["params"], row["gflops"]) == model_costs(row["encoder"], 5, 64, 96)
        assert row["weights_file"] == ENCODERS[row["encoder"]].weights_file
    assert list((seglab_cache / "models").glob("*.json"))  # kept for the next call


def test_a_cached_table_still_sees_new_weights_files(torch_home):
    assert not any(r["cached"] for r in encoder_table(64, 96, 5))
    assert torch_hub_checkpoints() == torch_home / "hub" / "checkpoints"
    assert torch_hub_checkpoints().parent == type(torch_hub_checkpoints())(torch.hub.get_dir())
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    (torch_home / "hub" / "checkpoints" / ENCODERS["vgg19"].weights_file).write_bytes(b"")
    cached = {r["encoder"]: r["cached"] for r in encoder_table(64, 96, 5)}
    assert cached["vgg19"] and not cached["resnet34"]


def test_a_cached_table_loads_no_torch(seglab_cache):
    encoder_table(32, 32, 3)
    code = (
        "import sys; from seglab.models.table import encoder_table; "
        "encoder_table(32, 32, 3); print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
