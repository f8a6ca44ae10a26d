"""``omnireid export onnx | openvino``: a deployable model carrying its preprocessing contract,
verified against PyTorch before it is written."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnireid.cli.common import add_weights_options, positive_int
from omnireid.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

    from omnireid.deploy.contract import ModelContract


def _add_common(p: argparse.ArgumentParser, suffix: str) -> None:
    add_weights_options(p, required=False)
    p.add_argument(
        "--random-init",
        action="store_true",
        help="export a randomly initialised --arch (for tests; never for deployment)",
    )
    p.add_argument(
        "--out",
        help=f"{suffix} file, or a folder for the default name {{arch}}_{{dataset}}{suffix} "
        "(default: that name in the current folder)",
    )
    p.add_argument(
        "--dataset",
        help="training dataset for the file name and the contract (default: the run config's, "
        "or what a file name like osnet_x0_25_market1501.pt says)",
    )
    p.add_argument(
        "--fixed-batch",
        action="store_true",
        help="batch size fixed to 1 (default: free, as trackers batching crops need)",
    )


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a model for deployment (ONNX, OpenVINO)")
    export_sub = p.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    p = export_sub.add_parser("onnx", help="ONNX graph, verified in ONNX Runtime")
    _add_common(p, ".onnx")
    p.add_argument("--dynamic-batch", action="store_true", help=argparse.SUPPRESS)  # the default
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument(
        "--int8-calib",
        metavar="DIR",
        help="also write OUT.int8.onnx, int8-quantised with ranges calibrated on images in DIR "
        "(use training images, not the test set; measure the accuracy cost)",
    )
    p.add_argument("--calib-count", type=positive_int, default=300, help="calibration images (300)")
    p.add_argument("--calib-method", choices=("minmax", "percentile", "entropy"), default="minmax")
    p.add_argument(
        "--int8-full-range",
        action="store_true",
        help="8-bit weights (default 7-bit: full-range weights saturate the int8 dot products of "
        "CPUs without VNNI and cost 4.6 mAP on Market-1501 instead of 0.8)",
    )
    p.set_defaults(func=cmd_export_onnx)
    p = export_sub.add_parser("openvino", help="OpenVINO IR (.xml + .bin, fp32), verified")
    _add_common(p, ".xml")
    p.set_defaults(func=cmd_export_openvino)


def model_and_contract(
    args: argparse.Namespace, suffix: str
) -> tuple[nn.Module, ModelContract, Path]:
    """``(eval model, ModelContract, output path)`` of ``--weights`` or ``--random-init``."""
    from omnireid.deploy.contract import ModelContract, output_path, training_dataset
    from omnireid.models import build, load_for_inference
    from omnireid.models.loader import read_weights
    from omnireid.models.weights import file_sha256
    from omnireid.preprocessing import Preprocessing

    if args.weights is not None and args.random_init:
        raise UsageError("give --weights or --random-init, not both")
    if args.weights is not None:
        info = read_weights(args.weights, args.arch)
        model, pre = load_for_inference(info, height=args.height, width=args.width)
        digest = file_sha256(info.file)
        dataset = args.dataset or training_dataset(info.meta, info.file, model.arch)
        named = dataset
    elif not args.random_init:
        raise UsageError(
            "--weights is required (a run folder, checkpoint or weights file); "
            "--random-init exports an untrained model on purpose"
        )
    elif args.arch is None:
        raise UsageError("--random-init needs --arch")
    else:
        default = Preprocessing()
        pre = Preprocessing(args.height or default.height, args.width or default.width)
        model = build(args.arch, num_classes=1).eval()
        digest, dataset, named = "", args.dataset or "", args.dataset or "random-init"
    contract = ModelContract(model.arch, model.feature_dim, pre, digest, dataset)
    return model, contract, output_path(args.out, model.arch, named, suffix)


def _describe(contract: ModelContract, args: argparse.Namespace) -> str:
    pre = contract.preprocessing
    batch = "batch 1" if args.fixed_batch else "dynamic batch"
    return f"{contract.arch} ({pre.height}x{pre.width}, {batch})"


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from omnireid.deploy.onnx import check_opset, export_verified_onnx, write_onnx_contract

    check_opset(args.opset)
    model, contract, out = model_and_contract(args, ".onnx")
    diff = export_verified_onnx(  # raises (exit 2, nothing written) above 1e-4
        model, out, contract, dynamic_batch=not args.fixed_batch, opset=args.opset
    )
    print(f"exported {_describe(contract, args)}, opset {args.opset} -> {out}")
    print(f"ONNX Runtime vs PyTorch: max abs diff {diff:.3g} (tolerance 1e-4)")
    if args.int8_calib:
        from omnireid.deploy.quantize import calibration_images, quantize_onnx

        calib = calibration_images(args.int8_calib, contract.preprocessing, args.calib_count)
        int8 = quantize_onnx(
            out,
            out.with_suffix(".int8.onnx"),
            calib,
            method=args.calib_method,
            reduce_range=not args.int8_full_range,
        )
        write_onnx_contract(int8, contract)
        print(f"int8 (calibrated on {len(calib)} images, {args.calib_method}) -> {int8}")
    return 0


def cmd_export_openvino(args: argparse.Namespace) -> int:
    from omnireid.deploy.openvino import export_openvino

    model, contract, out = model_and_contract(args, ".xml")
    diff = export_openvino(model, out, contract, dynamic_batch=not args.fixed_batch)
    print(f"exported {_describe(contract, args)}, fp32 -> {out} (+ {out.with_suffix('.bin')})")
    print(f"OpenVINO vs PyTorch: max abs diff {diff:.3g} (tolerance 1e-4)")
    return 0
