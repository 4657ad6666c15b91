"""The benchmark's backends, by name. Constants only, no torch: the command line reads them to
build its --help at once."""

from __future__ import annotations

# How each backend runs the model (the benchmark table's last column).
BACKEND_NOTES = {
    "eager": "PyTorch fp32, default memory format",
    "channels_last": "PyTorch fp32, channels_last",
    "bf16": "PyTorch bf16 autocast, channels_last",
    "compile": "torch.compile (inductor), channels_last",
    "onnxruntime": "ONNX Runtime, CPU, fp32",
    "int8": "ONNX Runtime INT8 (static, per-channel weights, QDQ)",
}
BACKENDS = tuple(BACKEND_NOTES)
TORCH_BACKENDS = ("eager", "channels_last", "bf16", "compile")  # need the PyTorch model
