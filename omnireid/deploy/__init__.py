"""Deployment: the feature extractor (torch, fast, ONNX Runtime and OpenVINO backends; detector
boxes from video frames), ONNX and OpenVINO export carrying the preprocessing contract, int8
quantisation, check-pipeline's integration variants, and the FAISS gallery index."""
