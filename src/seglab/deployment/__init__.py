"""Deployment: predicting on new images, exporting to ONNX, benchmarking backends."""
