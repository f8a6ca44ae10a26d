"""What a ``FeatureExtractor`` was given -> the model it runs and that model's ``ModelSpec``:
weights (``load_for_inference``), a loaded model, a ``ModelSpec`` (random weights) or an
exported graph (its contract and precision)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import cast

from torch import nn

from omnireid.deploy.contract import MissingContractError, ModelContract
from omnireid.errors import UsageError
from omnireid.models import build, load_for_inference
from omnireid.models.spec import ModelSpec

log = logging.getLogger("omnireid.deploy.extractor")  # the extractor's messages, as before


def model_and_spec(
    model: nn.Module | ModelSpec | str | Path | None,
    arch: str | None,
    input_size: tuple[int | None, int | None] | None,
    num_classes: int | None,
    graph: Path | None,
) -> tuple[nn.Module | None, ModelSpec]:
    """``(eval model or None for a graph, its spec)`` of what ``FeatureExtractor`` was given:
    weights (a path or ``zoo:NAME``: ``load_for_inference``, ``arch`` and ``input_size``
    override), a loaded model (its ``model.spec``), a ``ModelSpec`` (that model, randomly
    initialised) or nothing beside a graph file."""
    if graph is not None:
        if model is not None:
            option = "onnx_path" if graph.suffix == ".onnx" else "openvino_path"
            raise UsageError(f"give a model or {option}, not both: the graph holds weights")
        return None, ModelSpec("unknown")  # the contract's, read by the caller
    if model is None:
        raise UsageError(
            "give a model: weights (a run, checkpoint or weights file, zoo:NAME), a loaded "
            "model, a ModelSpec, or an exported onnx_path / openvino_path"
        )
    if isinstance(model, str | Path):
        h, w = input_size if input_size is not None else (None, None)
        network, _ = load_for_inference(model, arch, height=h, width=w, num_classes=num_classes)
        return network, cast(ModelSpec, network.spec)  # load_for_inference attaches it
    if arch is not None:
        raise UsageError("arch overrides the architecture of weights given as a path")
    if isinstance(model, ModelSpec):
        if not model.arch:
            raise UsageError("the ModelSpec names no architecture (arch)")
        classes = model.num_classes or num_classes or 1
        network = build(model.arch, num_classes=classes, **model.options).eval()
        if model.weights_sha256:
            log.warning("%s: a spec carries no weights; its model is randomly initialised", model)
        return network, replace(model, feature_dim=network.feature_dim)
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise UsageError(
            f"the {type(model).__name__} carries no ModelSpec (model.spec): load it with "
            "omnireid.models.load_for_inference, or give a ModelSpec"
        )
    return model.eval(), spec


def graph_precision(path: Path, backend: str) -> str:
    """What the graph file for ``backend`` holds: "int8", "bf16" (an OpenVINO IR marked to run
    in bf16) or "fp32"."""
    if backend == "onnxruntime":
        from omnireid.deploy.onnx import onnx_precision

        return onnx_precision(path)
    from omnireid.deploy.openvino import openvino_precision, read_openvino_model

    return openvino_precision(read_openvino_model(path))


def graph_contract(backend: str, path: Path) -> ModelContract | None:
    """The contract ``path`` carries, or None (with a warning) for a graph without one."""
    from omnireid.deploy.onnx import read_onnx_contract
    from omnireid.deploy.openvino import read_openvino_contract

    read = read_onnx_contract if backend == "onnxruntime" else read_openvino_contract
    try:
        return read(path)
    except MissingContractError:
        log.warning("%s carries no preprocessing contract: assuming the defaults", path)
        return None
