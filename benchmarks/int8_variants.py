"""Which post-training int8 settings lower the Market-1501 cost of a model: each variant is
quantised from the same fp32 graph, calibrated on the same 300 train images, and scored on the
full query/gallery (cosine and Euclidean mAP, R1, the cosine of its features to fp32's).

Variants (``--variants``, default all):
  ort_default       ONNX Runtime QDQ as ``omnireid export --int8-calib`` writes it (minmax, per
                    channel, Conv/Gemm/MatMul/Add/Mul/GlobalAveragePool/MaxPool quantised)
  ort_no_gemm       the same with the final fc (Gemm) left in fp32
  ort_conv_only     only Conv and Gemm quantised (the gate's Mul, residual Add, pools in fp32)
  ort_no_dw         every depthwise 3x3 convolution (group > 1) left in fp32
  ort_percentile    percentile calibration instead of minmax
  ov_default        NNCF for OpenVINO as ``omnireid export`` writes it (performance preset)
  ov_no_matmul      the final fc (MatMul) left in fp32
  ov_mixed          NNCF's mixed preset (asymmetric activations)
  ov_no_dw          OpenVINO's GroupConvolution (the depthwise convolutions) left in fp32

Usage: python benchmarks/int8_variants.py --weights W [--variants ...] [--json F]
Accuracy does not depend on machine load (run it beside other work, `nice`); ~3 min a variant.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from common import machine
from quantized_market import SHARED, decoded, features, scores

from omnireid.data.datasets import load_dataset
from omnireid.deploy.contract import ModelContract
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.onnx import export_verified_onnx
from omnireid.deploy.openvino import export_openvino, read_openvino_model, save_openvino
from omnireid.deploy.quantize import CHECK_IMAGES, calibration_split, import_nncf, quantize_onnx
from omnireid.models import load_for_inference

ORT = {
    "ort_default": {},
    "ort_no_gemm": {"exclude_op_types": ("Gemm",)},
    "ort_conv_only": {"exclude_op_types": ("Add", "Mul", "GlobalAveragePool", "MaxPool")},
    "ort_no_dw": {"depthwise_fp32": True},  # quantize_onnx keeps grouped convolutions fp32
    "ort_percentile": {"method": "percentile"},
}
OV = ("ov_default", "ov_no_matmul", "ov_mixed", "ov_no_dw")


def ov_graph(xml32: Path, out: Path, calib: np.ndarray, name: str, contract) -> Path:
    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    options: dict = {
        "preset": nncf.QuantizationPreset.PERFORMANCE,
        "target_device": nncf.TargetDevice.CPU,
        "subset_size": len(calib),
        "advanced_parameters": AdvancedQuantizationParameters(overflow_fix=OverflowFix.DISABLE),
    }
    if name == "ov_no_matmul":
        options["ignored_scope"] = nncf.IgnoredScope(types=["MatMul"])
    if name == "ov_no_dw":
        options["ignored_scope"] = nncf.IgnoredScope(types=["GroupConvolution"])
    if name == "ov_mixed":
        options["preset"] = nncf.QuantizationPreset.MIXED
    data = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))])
    save_openvino(nncf.quantize(read_openvino_model(xml32), data, **options), out, contract, "int8")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="weights, run folder or zoo:NAME")
    p.add_argument("--root", type=Path, default=SHARED / "data" / "market1501")
    p.add_argument("--variants", nargs="+", default=[*ORT, *OV], choices=[*ORT, *OV])
    p.add_argument("--json", type=Path, help="results (extended, not overwritten)")
    args = p.parse_args()
    if not args.root.is_dir():
        print(f"skipped: needs Market-1501 at {args.root}")
        return
    print(f"machine: {machine()}")
    dataset = load_dataset("market1501", args.root)
    model, pre = load_for_inference(args.weights)
    pixels = decoded(dataset, pre.input_size)
    contract = ModelContract(model.spec)
    train = next(args.root.rglob("bounding_box_train"))  # calibration: train images only
    calib, _ = calibration_split(train, pre, 300, CHECK_IMAGES)
    done = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    rows = done.setdefault(args.weights, {})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx32, xml32 = folder / "m.onnx", folder / "m.xml"
        export_verified_onnx(model, onnx32, contract)
        export_openvino(model, xml32, contract)
        base = features(FeatureExtractor(backend="onnxruntime", onnx_path=onnx32,
                                         normalize=False), pixels, pre)  # fmt: skip
        rows["fp32"] = scores(base, dataset)
        print("fp32", {k: round(v, 2) for k, v in rows["fp32"].items()}, flush=True)
        for name in args.variants:
            if name in ORT:
                graph = quantize_onnx(onnx32, folder / f"{name}.onnx", calib, **ORT[name])
                run = FeatureExtractor(backend="onnxruntime", onnx_path=graph, precision="int8",
                                       normalize=False)  # fmt: skip
            else:
                graph = ov_graph(xml32, folder / f"{name}.xml", calib, name, contract)
                run = FeatureExtractor(backend="openvino", openvino_path=graph, precision="int8",
                                       normalize=False)  # fmt: skip
            f = features(run, pixels, pre)
            s = scores(f, dataset)
            for key in ("mAP_cos", "mAP_euc", "R1_cos"):
                s[f"d{key}"] = s[key] - rows["fp32"][key]
            cos = (f * base).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(base, axis=1)
            s["cos_mean"], s["cos_min"] = float(cos.mean()), float(cos.min())
            rows[name] = s
            print(name, {k: round(v, 3) for k, v in s.items()}, flush=True)
            if args.json:
                args.json.write_text(json.dumps({"machine": machine(), **done}, indent=1) + "\n")


if __name__ == "__main__":
    main()
