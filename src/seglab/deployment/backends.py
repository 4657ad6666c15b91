"""The benchmark's backends, by name: the four ways PyTorch runs the model, then one per export
format (seglab.deployment.formats). Constants only, no torch: the command line reads them to
build its --help at once."""

from __future__ import annotations

from seglab.deployment.formats import FORMATS

# How each backend runs the model (the benchmark table's last column).
TORCH_BACKEND_NOTES = {
    "eager": "PyTorch fp32, default memory format",
    "channels_last": "PyTorch fp32, channels_last",
    "bf16": "PyTorch bf16 autocast, channels_last",
    "compile": "torch.compile (inductor), channels_last",
}
TORCH_BACKENDS = tuple(TORCH_BACKEND_NOTES)  # need the PyTorch model
FORMAT_OF_BACKEND = {f.backend: f.name for f in FORMATS.values()}
BACKEND_NOTES = {
    **TORCH_BACKEND_NOTES,
    **{f.backend: f.backend_note for f in FORMATS.values()},
}
BACKENDS = tuple(BACKEND_NOTES)
