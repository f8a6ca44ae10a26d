"""What a ``FeatureExtractor`` may be asked to run: its backends, precisions and graph files,
and the checks that refuse a combination that cannot work, before anything is loaded."""

from __future__ import annotations

from pathlib import Path

import torch

from omnireid.deploy.backends import PRECISIONS
from omnireid.errors import UsageError

BACKENDS = ("auto", "torch", "fast", "onnxruntime", "openvino")
PRECISION_CHOICES = ("auto", *PRECISIONS, "int8")
GRAPH_SUFFIXES = {"onnxruntime": ".onnx", "openvino": ".xml"}  # a graph file's runtime


def choose_backend(backend: str | None, precision: str, graph: str | None = None) -> str:
    """The backend an evaluation runs (``omnireid evaluate``): ``backend``, else "auto";
    ``graph`` is the runtime of a given graph file ("onnxruntime" or "openvino",
    ``graph_runtime``), which then fixes the backend. Refuses what cannot run together: a
    graph with another runtime, ``precision`` "bf16" off OpenVINO (the torch backends' bf16 is
    no faster on a CPU without bf16 units) and "int8" without an int8 graph."""
    family = graph
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if family not in (None, *GRAPH_SUFFIXES):
        raise UsageError(f"a graph runs in {sorted(GRAPH_SUFFIXES)}, not {family!r}")
    if family is not None and backend not in (family, "auto"):
        suffix = GRAPH_SUFFIXES[family]
        raise UsageError(f"a {suffix} graph runs with backend {family}, not {backend}")
    if precision == "bf16" and (backend not in ("auto", "openvino") or family == "onnxruntime"):
        raise UsageError("precision bf16 is for backend openvino (OpenVINO's bf16 inference)")
    if precision == "int8" and backend in ("torch", "fast"):
        raise UsageError("precision int8 runs an int8 graph (omnireid export --int8-calib)")
    return backend


def graph_runtime(path: str | Path) -> str:
    """The runtime of a graph file by its suffix: "onnxruntime" (.onnx), "openvino" (.xml)."""
    families = {suffix: runtime for runtime, suffix in GRAPH_SUFFIXES.items()}
    if Path(path).suffix.lower() not in families:
        raise UsageError(f"{path}: a graph file is a .onnx or an OpenVINO .xml")
    return families[Path(path).suffix.lower()]


def check_options(
    backend: str,
    precision: str,
    device: str,
    batch_size: int,
    onnx_path: str | Path | None,
    openvino_path: str | Path | None,
) -> Path | None:
    """Refuse options that cannot work together; the graph file given, if any."""
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in PRECISION_CHOICES:
        raise UsageError(f"precision must be one of {sorted(PRECISION_CHOICES)}, got {precision!r}")
    try:
        where = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise UsageError(f"device {device!r} is not a device torch knows ({e})") from None
    if where.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (where.index or 0) >= count:
            raise UsageError(f"device {device!r}: this machine has {count} usable CUDA GPU(s)")
    if precision == "fp16" and backend in ("onnxruntime", "openvino"):
        raise UsageError("precision='fp16' is for the torch backends (on a CUDA device)")
    if precision == "fp16" and where.type != "cuda":
        raise UsageError("precision='fp16' needs a CUDA device; use 'bf16' on CPU")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if onnx_path is not None and openvino_path is not None:
        raise UsageError("give onnx_path or openvino_path, not both")
    for name, path, wanted in (
        ("onnx_path", onnx_path, "onnxruntime"),
        ("openvino_path", openvino_path, "openvino"),
    ):
        if path is not None and backend not in (wanted, "auto"):
            raise UsageError(f"{name} is for backend={wanted!r}, not {backend!r}")
    graph = onnx_path if onnx_path is not None else openvino_path
    return Path(graph) if graph is not None else None
