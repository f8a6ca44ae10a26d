"""Deployment: fast inference path (feature extractor, ONNX and gallery index to come)."""
