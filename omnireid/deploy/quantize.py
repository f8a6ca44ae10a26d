"""int8 post-training quantisation of an exported OSNet: ONNX Runtime's quantiser for ONNX,
NNCF for OpenVINO, both calibrated on real images and checked against the fp32 graph.

Weights are int8 per output channel, activations uint8 with ranges calibrated on a few hundred
images preprocessed as for inference (training images: never the test set). On CPUs with VNNI
(``vpdpbusd``: AVX512_VNNI, AVX-VNNI, AMX) u8 x s8 dot products accumulate in int32 and cannot
saturate, so weights use the full 8-bit range (``full_range=True``). Without VNNI the int8
dot product (``vpmaddubsw``) saturates its 16-bit pair sums with full-range weights (-4.6 mAP
on Market-1501 measured on an AVX2 CPU, commit 89c7867); 7-bit weights avoid it
(``full_range=False``: ONNX Runtime's ``reduce_range``, NNCF's overflow fix on every layer).
ONNX Runtime's graph is QDQ (QuantizeLinear/DequantizeLinear pairs that its CPU provider fuses
into integer kernels): its QOperator form gave cosine 0.79 to fp32 on the mini queries with
full-range weights against 0.994 for QDQ (x0.25 checkpoint, noisy speed within 15%).

Accuracy is not guaranteed by construction: ``export_onnx_int8`` / ``export_openvino_int8``
compare the int8 graph's features with the fp32 graph's on held-out calibration images
(``agreement.check_against_fp32``) and write nothing below ``agreement.MIN_COSINE["int8"]``;
the Market-1501 mAP cost per model is measured by ``benchmarks/quantized_market.py``
(docs/deployment.md has the table).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from omnireid.data.images import list_images, read_image
from omnireid.data.transforms import transform_for
from omnireid.deploy.agreement import Agreement, check_against_fp32
from omnireid.deploy.contract import ModelContract
from omnireid.deploy.onnx import INPUT_NAME, OUTPUT_NAME, open_session, write_onnx_contract
from omnireid.errors import UsageError
from omnireid.preprocessing import Preprocessing

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
CHECK_IMAGES = 16  # held out of the calibration images to check the int8 graph on


def calibration_images(
    source: str | Path, preprocessing: Preprocessing, count: int = 300
) -> np.ndarray:
    """``(N, 3, H, W)`` float32 calibration batch: ``count`` images spread evenly over the
    sorted images under ``source`` (a folder, searched recursively), preprocessed for inference."""
    return calibration_split(source, preprocessing, count, check=0)[0]


def calibration_split(
    source: str | Path, preprocessing: Preprocessing, count: int = 300, check: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """``(calibration, held_out)`` ``(N, 3, H, W)`` float32 batches: ``count + check`` images
    spread evenly over the sorted images under ``source`` (so that all identities and cameras
    of a dataset folder are represented), every k-th of them held out to check the int8 graph on. A
    folder with fewer images gives fewer of each (at least one to calibrate on)."""
    if count < 1 or check < 0:
        raise ValueError(f"count must be >= 1 and check >= 0, got {count}, {check}")
    paths = list_images(source)
    total = min(len(paths), count + check)
    picks = [paths[i] for i in np.linspace(0, len(paths) - 1, total).round().astype(int)]
    step = max(2, total // check) if check else 0
    held = set(range(1, total, step)[:check]) if step and total > 1 else set()
    transform = transform_for(preprocessing)

    def load(items: list[Path]) -> np.ndarray:
        if not items:
            return np.zeros((0, 3, *preprocessing.input_size), np.float32)
        return np.stack([transform(read_image(p)).numpy() for p in items])

    calib = load([p for i, p in enumerate(picks) if i not in held])
    return calib, load([p for i, p in enumerate(picks) if i in held])


def _check_calibration(calibration: np.ndarray) -> np.ndarray:
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or calibration.shape[1] != 3 or len(calibration) == 0:
        raise ValueError(f"calibration must be (N>0, 3, H, W) images, got {calibration.shape}")
    return calibration


class _Batches:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over an ``(N, 3, H, W)`` array."""

    def __init__(self, images: np.ndarray, batch_size: int) -> None:
        self._chunks: Iterator[np.ndarray] = iter(
            [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._chunks, None)
        return None if chunk is None else {INPUT_NAME: np.ascontiguousarray(chunk)}

    def rewind(self) -> None:  # pragma: no cover - only the entropy calibrator asks
        raise NotImplementedError


def quantize_onnx(
    onnx_path: str | Path,
    out: str | Path,
    calibration: np.ndarray,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    batch_size: int = 16,
    exclude_op_types: tuple[str, ...] = (),
    depthwise_fp32: bool = False,
    reduce_range: bool = False,
) -> Path:
    """Write an int8 QDQ copy of the fp32 graph ``onnx_path`` (as exported by ``export_onnx``):
    u8 activations, s8 weights (per channel unless ``per_channel=False``).

    ``calibration``: ``(N, 3, H, W)`` float32 images preprocessed as for inference (the
    evaluation transform). ``exclude_op_types`` keeps those operator types in fp32 (e.g.
    ``("Gemm",)`` for the final fc); ``depthwise_fp32`` keeps every grouped convolution (OSNet's
    depthwise 3x3) in fp32, the setting that cost the least mAP in ``benchmarks/int8_variants.py``
    (not the default: still over 0.5 mAP on some models). ``reduce_range`` quantises weights to
    7 bits, for CPUs without VNNI (module docstring). Returns the path written (unchecked:
    ``export_onnx_int8`` checks).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {CALIBRATION_METHODS}, got {method!r}")
    calibration = _check_calibration(calibration)
    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_name(out.stem + ".prep.onnx")
    quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
    kept = _grouped_convolutions(prepared) if depthwise_fp32 else []
    types = ["Conv", "Gemm", "MatMul", "Add", "Mul", "GlobalAveragePool", "MaxPool"]
    try:
        quantize_static(
            str(prepared),
            str(out),
            # the histogram calibrators need equally sized batches: one image at a time
            _Batches(calibration, batch_size if method == "minmax" else 1),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            op_types_to_quantize=[t for t in types if t not in exclude_op_types],
            nodes_to_exclude=kept,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
        )
    finally:
        prepared.unlink(missing_ok=True)
    return out


def _grouped_convolutions(path: Path) -> list[str]:
    """Names of the Conv nodes with ``group > 1`` in the ONNX graph at ``path``."""
    import onnx

    return [
        node.name
        for node in onnx.load(str(path), load_external_data=False).graph.node
        if node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)
    ]


def import_nncf() -> Any:
    """``nncf``, with its usage telemetry off. nncf sends usage events through
    ``openvino_telemetry`` unless the user opted out, and writes a client id under the home
    folder when imported; it is imported with that package hidden, which makes nncf install
    its no-op stand-in, and the stand-in is put in place if nncf was imported before."""
    if "nncf" not in sys.modules:
        missing = object()
        saved = sys.modules.get("openvino_telemetry", missing)
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
        try:
            import nncf
        except ImportError as e:
            raise UsageError(
                f"OpenVINO int8 quantisation needs nncf ({e}): pip install 'omnireid[deploy]'"
            ) from e
        finally:
            if saved is missing:
                del sys.modules["openvino_telemetry"]
            else:
                sys.modules["openvino_telemetry"] = saved  # type: ignore[assignment]
    import nncf
    from nncf.telemetry import decorator, wrapper

    wrapper.telemetry = decorator.telemetry = wrapper.NNCFTelemetryStub()
    logging.getLogger("nncf").setLevel(logging.WARNING)
    return nncf


def quantize_openvino(model: Any, calibration: np.ndarray, *, full_range: bool = True) -> Any:
    """An int8 copy (``openvino.Model``) of the fp32 OpenVINO model ``model`` (a model or an
    ``.xml``/``.onnx`` file), by NNCF's post-training quantisation for the CPU: min/max ranges
    over ``calibration`` ``(N, 3, H, W)`` images (one at a time), fast bias correction,
    symmetric int8 weights per channel; 7-bit weights on every layer unless ``full_range``
    (module docstring). Unchecked: ``export_openvino_int8`` checks."""
    from omnireid.deploy.openvino import read_openvino_model

    calibration = _check_calibration(calibration)
    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    if isinstance(model, str | Path):
        model = read_openvino_model(model)
    fix = OverflowFix.DISABLE if full_range else OverflowFix.ENABLE
    # nncf imports its torch backend to recognise the model, and torch then logs that it found
    # no CUDA runtime (a CPU-only machine is expected here)
    torch_log = logging.getLogger("torch.utils.cpp_extension")
    level = torch_log.level
    torch_log.setLevel(logging.ERROR)
    try:
        return nncf.quantize(
            model,
            nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))]),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            target_device=nncf.TargetDevice.CPU,
            subset_size=len(calibration),
            advanced_parameters=AdvancedQuantizationParameters(overflow_fix=fix),
        )
    finally:
        torch_log.setLevel(level)


def export_onnx_int8(
    fp32_onnx: str | Path,
    out: str | Path,
    contract: ModelContract,
    calibration: np.ndarray,
    check: np.ndarray,
    *,
    method: str = "minmax",
    full_range: bool = True,
) -> Agreement:
    """Quantise the verified fp32 ONNX graph ``fp32_onnx`` (``quantize_onnx``), compare it with
    that graph in ONNX Runtime on the ``check`` images (``(N, 3, H, W)``, held out of
    ``calibration``) and only then write it to ``out`` with ``contract``; below the int8
    bound nothing is written and ``PrecisionCheckError`` says by how much it missed."""
    import onnx

    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    batch = onnx.load(str(fp32_onnx), load_external_data=False).graph.input[0]
    fixed = batch.type.tensor_type.shape.dim[0].HasField("dim_value")  # --fixed-batch: 1
    try:
        quantize_onnx(
            fp32_onnx,
            partial,
            calibration,
            method=method,
            reduce_range=not full_range,
            batch_size=1 if fixed else 16,
        )
        sessions = [open_session(p) for p in (fp32_onnx, partial)]
        runs = [(lambda x, s=s: s.run([OUTPUT_NAME], {INPUT_NAME: x})[0]) for s in sessions]
        found = check_against_fp32(runs[0], runs[1], check, "int8", out)
        write_onnx_contract(partial, contract)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return found


def export_openvino_int8(
    fp32_xml: str | Path,
    out: str | Path,
    contract: ModelContract,
    calibration: np.ndarray,
    check: np.ndarray,
    *,
    full_range: bool = True,
) -> Agreement:
    """Quantise the verified fp32 IR ``fp32_xml`` with NNCF (``quantize_openvino``), compare it
    with that IR (both compiled for the CPU with an f32 hint for what stays in floating point)
    on the ``check`` images, and only then write ``out`` (``.xml`` + ``.bin``) carrying
    ``contract``; below the int8 bound nothing is written (``PrecisionCheckError``)."""
    from omnireid.deploy.openvino import compile_openvino, read_openvino_model, save_openvino

    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".omnireid-ov-", dir=out.parent) as tmp:
        xml = Path(tmp) / out.name
        int8 = quantize_openvino(read_openvino_model(fp32_xml), calibration, full_range=full_range)
        save_openvino(int8, xml, contract, "int8")
        compiled = [compile_openvino(p, "cpu") for p in (fp32_xml, xml)]
        runs = [(lambda x, c=c: c([x])[c.outputs[0]]) for c in compiled]
        found = check_against_fp32(runs[0], runs[1], check, "int8", out)
        del compiled, runs  # release the .bin before it is moved
        xml.with_suffix(".bin").replace(out.with_suffix(".bin"))
        xml.replace(out)
    return found
