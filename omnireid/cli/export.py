"""``omnireid export onnx``: a deployable graph, verified against PyTorch before it is kept."""

from __future__ import annotations

import argparse
from typing import Any

from omnireid.cli.common import add_weights_options, load_model
from omnireid.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a model for deployment (ONNX)")
    export_sub = p.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    p = export_sub.add_parser("onnx", help="ONNX graph, verified in ONNX Runtime")
    add_weights_options(p, required=False)
    p.add_argument(
        "--random-init",
        action="store_true",
        help="export a randomly initialised --arch (for tests; never for deployment)",
    )
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--dynamic-batch", action="store_true", help="free batch size (default 1)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument(
        "--int8-calib",
        metavar="DIR",
        help="also write OUT.int8.onnx, int8-quantised with ranges calibrated on images in DIR "
        "(use training images, not the test set; measure the accuracy cost)",
    )
    p.add_argument("--calib-count", type=int, default=300, help="calibration images (300)")
    p.add_argument("--calib-method", choices=("minmax", "percentile", "entropy"), default="minmax")
    p.add_argument(
        "--int8-full-range",
        action="store_true",
        help="8-bit weights (default 7-bit: full-range weights saturate the int8 dot products of "
        "CPUs without VNNI and cost 4.6 mAP on Market-1501 instead of 0.8)",
    )
    p.set_defaults(func=cmd_export_onnx)


def _model(args: argparse.Namespace):
    if args.weights is not None and args.random_init:
        raise UsageError("give --weights or --random-init, not both")
    if args.weights is not None:
        return load_model(args)
    if not args.random_init:
        raise UsageError(
            "--weights is required (a run folder, checkpoint or weights file); "
            "--random-init exports an untrained model on purpose"
        )
    if args.arch is None:
        raise UsageError("--random-init needs --arch")
    from omnireid.models import build
    from omnireid.preprocessing import Preprocessing

    default = Preprocessing()
    size = (args.height or default.height, args.width or default.width)
    return build(args.arch, num_classes=1).eval(), Preprocessing(*size)


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from omnireid.deploy.onnx import check_opset, export_onnx, verify_onnx

    check_opset(args.opset)

    model, pre = _model(args)
    size = pre.size
    out = export_onnx(model, args.out, size, dynamic_batch=args.dynamic_batch, opset=args.opset)
    batch = 2 if args.dynamic_batch else 1
    print(f"exported {model.arch} ({size[0]}x{size[1]}, opset {args.opset}) -> {out}")
    diff = verify_onnx(model, out, size, batch=batch)  # raises (exit 2) above 1e-4
    print(f"ONNX Runtime vs PyTorch: max abs diff {diff:.3g} (batch {batch}, tolerance 1e-4)")
    if args.int8_calib:
        from omnireid.deploy.quantize import calibration_images, quantize_onnx

        calib = calibration_images(args.int8_calib, pre, args.calib_count)
        int8 = quantize_onnx(
            out,
            out.with_suffix(".int8.onnx"),
            calib,
            method=args.calib_method,
            reduce_range=not args.int8_full_range,
        )
        print(f"int8 (calibrated on {len(calib)} images, {args.calib_method}) -> {int8}")
    return 0
