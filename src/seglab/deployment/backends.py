"""The benchmark's backends and the export formats, by name. Constants only, no torch: the
command line reads them to build its --help at once."""

from __future__ import annotations

# How each backend runs the model (the benchmark table's last column).
BACKEND_NOTES = {
    "eager": "PyTorch fp32, default memory format",
    "channels_last": "PyTorch fp32, channels_last",
    "bf16": "PyTorch bf16 autocast, channels_last",
    "compile": "torch.compile (inductor), channels_last",
    "onnxruntime": "ONNX Runtime, CPU, fp32",
    "int8": "ONNX Runtime INT8 (static, per-channel weights, QDQ)",
    "executorch": "ExecuTorch, XNNPACK, fp32, fixed input size",
}
BACKENDS = tuple(BACKEND_NOTES)
TORCH_BACKENDS = ("eager", "channels_last", "bf16", "compile")  # need the PyTorch model

# What `seglab export --format` writes: the format, its file suffix, how it runs, and the
# benchmark backend that runs the same thing.
FORMATS = {
    "onnx": (".onnx", "ONNX Runtime fp32, any input size", "onnxruntime"),
    "onnx-int8": (
        ".onnx",
        "ONNX Runtime static INT8 (QDQ, per-channel weights) calibrated on training images, "
        "any input size",
        "int8",
    ),
    "executorch": (
        ".pte",
        "ExecuTorch with the XNNPACK backend, fp32, a fixed input size (other sizes padded, "
        "larger ones tiled)",
        "executorch",
    ),
}
ARTIFACT_SUFFIXES = (".onnx", ".pte")  # files load_segmenter runs as exported artifacts
