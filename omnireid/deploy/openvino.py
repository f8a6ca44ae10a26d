"""OpenVINO export of an OSNet and its check against PyTorch.

The IR (``.xml`` graph + ``.bin`` weights) is made from the verified ONNX export with
OpenVINO's own ONNX reader (``Core.read_model``), not ``openvino.convert_model`` (which pulls
in the conversion tools and their telemetry hooks), and saved with fp32 weights
(``save_model`` compresses to fp16 unless told not to). The contract goes into the IR's
``rt_info`` section ``omnireid``. Models are compiled with ``INFERENCE_PRECISION_HINT=f32``:
on CPUs with bf16 units (AMX, AVX512-BF16) OpenVINO would otherwise run in bf16 by default
and the features would no longer match PyTorch's to 1e-4. The IR also says so itself for other
programs: ``rt_info`` ``runtime_options/INFERENCE_PRECISION_HINT`` (which
``Core.compile_model`` applies when given no hint) is ``f32`` in an fp32 IR and ``bf16`` in
the bf16 one (``export_openvino_bf16``: the same fp32 weights, meant to run in bf16).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnireid.deploy.agreement import Agreement, check_against_fp32
from omnireid.deploy.contract import ModelContract
from omnireid.deploy.onnx import compare_with_torch, export_onnx
from omnireid.errors import ExportError, UsageError

SECTION = "omnireid"
RUNTIME_HINT = ["runtime_options", "INFERENCE_PRECISION_HINT"]
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: what stays in floating point


class OpenVinoVerificationError(ExportError):
    """OpenVINO's features differ from PyTorch's by more than the tolerance."""


def _core() -> Any:
    import openvino as ov

    return ov.Core()


def read_openvino_model(path: str | Path) -> Any:
    """The ``openvino.Model`` of an IR ``.xml`` (its ``.bin`` beside it) or an ``.onnx``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OpenVINO model not found: {path}")
    try:
        return _core().read_model(str(path))
    except RuntimeError as e:  # OpenVINO's reader: one multi-line message for any bad file
        reason = " ".join(str(e).split())[-160:]
        raise ExportError(f"{path} is not an OpenVINO IR or ONNX model ({reason})") from e


def read_openvino_contract(path_or_model: str | Path | Any) -> ModelContract:
    """The contract in an IR's ``rt_info`` (``ExportError`` when it has none)."""
    if isinstance(path_or_model, str | Path):
        source, model = path_or_model, read_openvino_model(path_or_model)
    else:
        source, model = "the OpenVINO model", path_or_model
    props = {}
    if model.has_rt_info([SECTION]):
        section = model.get_rt_info()[SECTION]  # {key: OVAny}
        props = {str(k): v.astype(str) for k, v in section.items()}
    return ModelContract.from_props(props, source)


def check_openvino_weights(model: Any, source: str | Path) -> None:
    """Refuse an ``openvino.Model`` whose float constants (its weights) hold NaN or infinite
    values: OpenVINO's fused convolutions turn them into zeros instead of NaN features."""
    import openvino as ov

    damaged = []
    for op in model.get_ops():
        kind = op.get_element_type() if op.get_type_name() == "Constant" else None
        if kind is None or not kind.is_real():
            continue
        values = op.get_data()
        if kind == ov.Type.bf16:  # given as float16 bits: all-ones exponent = NaN or infinite
            finite = bool(((values.view(np.uint16) & 0x7F80) != 0x7F80).all())
        else:
            finite = bool(np.isfinite(values).all())
        if not finite:
            damaged.append(op.get_friendly_name())
    if damaged:
        raise ExportError(
            f"{source} holds NaN or infinite weights in {len(damaged)} tensor(s), e.g. "
            f"{', '.join(damaged[:3])}: the model is damaged"
        )


def compile_openvino(
    model: Any, device: str = "cpu", threads: int | None = None, precision: str = "f32"
) -> Any:
    """``model`` (an ``openvino.Model`` or a file) compiled for ``device`` ("cpu", "gpu",
    "npu"; OpenVINO's names work too), ``precision`` "f32" unless asked otherwise."""
    if isinstance(model, str | Path):
        model = read_openvino_model(model)
    name = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}.get(device.lower(), device)
    core = _core()
    if name.split(".")[0] not in {d.split(".")[0] for d in core.available_devices}:
        raise UsageError(f"device {device!r}: OpenVINO sees {core.available_devices} here")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
    if name == "CPU":
        config["INFERENCE_NUM_THREADS"] = threads or torch.get_num_threads()
    return core.compile_model(model, name, config)


@torch.no_grad()
def verify_openvino(
    model: nn.Module,
    compiled: Any,
    input_size: tuple[int, int],
    batch: int = 2,
    atol: float = 1e-4,
    source: str | Path = "the OpenVINO model",
) -> float:
    """Max abs difference between OpenVINO's and ``model``'s (eval, CPU) features on a seeded
    random ``(batch, 3, H, W)`` input; raises ``OpenVinoVerificationError`` above ``atol``."""
    return compare_with_torch(
        model,
        lambda x: compiled([x])[compiled.outputs[0]],
        input_size,
        batch=batch,
        atol=atol,
        source=source,
        engine="OpenVINO",
        error=OpenVinoVerificationError,
    )


def export_openvino(
    model: nn.Module,
    out: str | Path,
    contract: ModelContract,
    *,
    dynamic_batch: bool = True,
    atol: float = 1e-4,
) -> float:
    """Write ``model`` as an fp32 OpenVINO IR ``out`` (``.xml``, with its ``.bin``) carrying
    ``contract``, verified on the CPU against PyTorch first: on failure nothing is written and
    ``OpenVinoVerificationError`` says by how much it missed. Returns the max abs difference."""
    out = Path(out)
    if out.suffix != ".xml":
        raise UsageError(f"an OpenVINO IR is an .xml file (with its .bin), got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    size = contract.preprocessing.input_size
    with tempfile.TemporaryDirectory(prefix=".omnireid-ov-", dir=out.parent) as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", size, dynamic_batch)
        xml = Path(tmp) / out.name
        save_openvino(_core().read_model(str(onnx_path)), xml, contract, "fp32")
        compiled = compile_openvino(xml, "cpu")
        diff = verify_openvino(
            model, compiled, size, batch=2 if dynamic_batch else 1, atol=atol, source=out
        )
        xml.with_suffix(".bin").replace(out.with_suffix(".bin"))
        xml.replace(out)
    return diff


def save_openvino(graph: Any, out: str | Path, contract: ModelContract, precision: str) -> None:
    """Write ``graph`` (an ``openvino.Model``) to ``out`` (``.xml`` + ``.bin``) with fp32
    weights, ``contract`` in ``rt_info`` and the runtime hint of ``precision`` ("fp32", "bf16",
    "int8")."""
    import openvino as ov

    for key, value in contract.to_props().items():
        graph.set_rt_info(value, [SECTION, key])
    graph.set_rt_info(HINTS[precision], RUNTIME_HINT)
    ov.save_model(graph, str(out), compress_to_fp16=False)


def openvino_precision(model: Any) -> str:
    """ "int8" for an IR with quantisation (``FakeQuantize`` ops or 8-bit integer weights),
    "bf16" for one whose runtime hint says bf16, else "fp32"."""
    import openvino as ov

    for op in model.get_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize" or (
            kind == "Constant" and op.get_element_type() in (ov.Type.i8, ov.Type.u8)
        ):
            return "int8"
    if model.has_rt_info(RUNTIME_HINT):
        hint = model.get_rt_info(RUNTIME_HINT).astype(str)
        return "bf16" if hint == "bf16" else "fp32"
    return "fp32"


def export_openvino_bf16(
    fp32_xml: str | Path, out: str | Path, contract: ModelContract
) -> Agreement:
    """Write the fp32 IR ``fp32_xml`` as ``out`` marked to run in bf16 (its runtime hint; the
    weights stay fp32), after checking on a seeded random batch that OpenVINO's bf16 features
    are within the bf16 bound of its fp32 ones (``PrecisionCheckError`` and nothing written
    otherwise). Compiled on a CPU without bf16 units the hint gives fp32."""
    out = Path(out)
    size = contract.preprocessing.input_size
    x = torch.randn(8, 3, *size, generator=torch.Generator().manual_seed(0)).numpy()
    with tempfile.TemporaryDirectory(prefix=".omnireid-ov-", dir=out.parent) as tmp:
        xml = Path(tmp) / out.name
        save_openvino(read_openvino_model(fp32_xml), xml, contract, "bf16")
        compiled = [
            compile_openvino(fp32_xml, "cpu"),
            compile_openvino(xml, "cpu", precision="bf16"),
        ]
        runs = [(lambda b, c=c: c([b])[c.outputs[0]]) for c in compiled]
        found = check_against_fp32(runs[0], runs[1], x, "bf16", out)
        del compiled, runs
        xml.with_suffix(".bin").replace(out.with_suffix(".bin"))
        xml.replace(out)
    return found
