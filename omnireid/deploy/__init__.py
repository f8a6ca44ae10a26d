"""Deployment: fast inference, feature extractor, ONNX export and int8, gallery index."""
