"""Deployment: the feature extractor (torch, fast and ONNX Runtime backends), ONNX export and
int8 quantisation, and the FAISS gallery index."""
