"""Checkpoint formats: upstream PyTorch directories, ONNX graphs, weights packages."""
