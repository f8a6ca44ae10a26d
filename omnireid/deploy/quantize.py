"""int8 static quantisation of an exported OSNet through ONNX Runtime.

Weights are quantised per output channel to int8 and activations to uint8 with ranges
calibrated on real images (a few hundred suffice), in ONNX Runtime's QDQ format, which its CPU
execution provider runs as integer convolutions (``QLinearConv``; AVX2 has no VNNI, so the
gain over fp32 is smaller than on newer CPUs). Accuracy is not guaranteed by construction:
measure it (``benchmarks/quantized_market.py`` reports the Market-1501 mAP cost).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from omnireid.data.images import list_images, read_image
from omnireid.data.transforms import transform_for
from omnireid.deploy.onnx import INPUT_NAME
from omnireid.preprocessing import Preprocessing

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


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


def calibration_images(
    source: str | Path, preprocessing: Preprocessing, count: int = 300
) -> np.ndarray:
    """``(N, 3, H, W)`` float32 calibration batch: the first ``count`` images under ``source``
    (a folder, searched recursively), preprocessed as for inference."""
    transform = transform_for(preprocessing)
    paths = list_images(source, limit=count)
    return np.stack([transform(read_image(p)).numpy() for p in paths])


def quantize_onnx(
    onnx_path: str | Path,
    out: str | Path,
    calibration: np.ndarray,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    batch_size: int = 16,
    exclude_op_types: tuple[str, ...] = (),
    reduce_range: bool = False,
) -> Path:
    """Write an int8 copy of the fp32 graph ``onnx_path`` (as exported by ``export_onnx``).

    ``calibration``: ``(N, 3, H, W)`` float32 images preprocessed as for inference (the
    evaluation transform). ``exclude_op_types`` keeps those operator types in fp32 (e.g.
    ``("Gemm",)`` for the final fc). ``reduce_range`` quantises weights to 7 bits: on CPUs
    without VNNI (AVX2, AVX-512 before Cascade Lake) the 8-bit dot-product instruction
    (``vpmaddubsw``) saturates its 16-bit pair sums with full-range weights; 7 bits cannot
    overflow. Returns the path written.
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
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or calibration.shape[1] != 3 or len(calibration) == 0:
        raise ValueError(f"calibration must be (N>0, 3, H, W) images, got {calibration.shape}")
    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_name(out.stem + ".prep.onnx")
    quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
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
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[method],
        )
    finally:
        prepared.unlink(missing_ok=True)
    return out
