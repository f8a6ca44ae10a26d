"""``omnireid export onnx | openvino``: a deployable model carrying its preprocessing contract,
verified against PyTorch before it is written."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

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
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default 17)")
    _add_int8(p, ".int8.onnx", "ONNX Runtime's quantiser, QDQ")
    p.add_argument("--calib-method", choices=("minmax", "percentile", "entropy"), default="minmax")
    p.set_defaults(func=cmd_export_onnx)
    p = export_sub.add_parser("openvino", help="OpenVINO IR (.xml + .bin, fp32), verified")
    _add_common(p, ".xml")
    _add_int8(p, ".int8.xml", "NNCF")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="also write OUT.bf16.xml: the same fp32 weights marked to run in bf16 on CPUs with "
        "bf16 units (checked against fp32 first)",
    )
    p.set_defaults(func=cmd_export_openvino)


def _add_int8(p: argparse.ArgumentParser, suffix: str, tool: str) -> None:
    p.add_argument(
        "--int8-calib",
        metavar="DIR",
        help=f"also write OUT{suffix}, int8-quantised ({tool}) with ranges calibrated on images "
        "in DIR (training images, never the test set), checked against fp32 on images of DIR "
        "held out of the calibration",
    )
    p.add_argument("--calib-count", type=positive_int, default=300, help="calibration images (300)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--int8-full-range",
        action="store_true",
        help="8-bit weights (the default on a CPU with VNNI, which int8 runs fast on)",
    )
    weights.add_argument(
        "--int8-reduce-range",
        action="store_true",
        help="7-bit weights (the default on a CPU without VNNI: full-range weights saturate its "
        "int8 dot products, -4.6 mAP on Market-1501 against -0.8 on an AVX2 CPU)",
    )


def _full_range(args: argparse.Namespace) -> bool:
    """8-bit weights unless asked otherwise or this CPU has no VNNI (``_add_int8``)."""
    from omnireid.deploy.auto import has_units
    from omnireid.deploy.peak import cpu_flags

    if args.int8_full_range or args.int8_reduce_range:
        return bool(args.int8_full_range)
    return has_units("int8", cpu_flags())


def _calibration(args: argparse.Namespace, contract: ModelContract) -> tuple[Any, Any, str]:
    """``(calibration, held-out check images, how: one line)`` from ``--int8-calib``."""
    from omnireid.deploy.quantize import CHECK_IMAGES, calibration_split

    calib, check = calibration_split(
        args.int8_calib, contract.preprocessing, args.calib_count, CHECK_IMAGES
    )
    bits = "8-bit" if _full_range(args) else "7-bit"
    return calib, check, f"calibrated on {len(calib)} images of {args.int8_calib}, {bits} weights"


def model_and_contract(
    args: argparse.Namespace, suffix: str
) -> tuple[nn.Module, ModelContract, Path]:
    """``(eval model, ModelContract, output path)`` of ``--weights`` or ``--random-init``."""
    from omnireid.deploy.contract import ModelContract, output_path, training_dataset
    from omnireid.models import build, load_for_inference
    from omnireid.models.spec import ModelSpec
    from omnireid.preprocessing import Preprocessing

    if args.weights is not None and args.random_init:
        raise UsageError("give --weights or --random-init, not both")
    if args.weights is not None:
        model, _ = load_for_inference(args.weights, args.arch, height=args.height, width=args.width)
        spec = cast(ModelSpec, model.spec)  # load_for_inference attaches it
        named = args.dataset or training_dataset(spec, args.weights)
        if named and not spec.provenance.trained_on:  # a plain file: what its name says
            spec = replace(spec, provenance=replace(spec.provenance, trained_on=named))
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
        network = build(args.arch, num_classes=1).eval()
        arch = cast(str, network.arch)  # build names it
        spec = ModelSpec(arch, feature_dim=network.feature_dim, preprocessing=pre)
        model = network
        named = args.dataset or "random-init"
    if args.dataset:
        spec = replace(spec, provenance=replace(spec.provenance, trained_on=args.dataset))
    # an OSNet or a MutualPair (load_for_inference's task "reid"): its arch and embedding size
    arch, dim = cast(str, model.arch), cast(int, model.feature_dim)
    contract = ModelContract(replace(spec, feature_dim=dim))
    return model, contract, output_path(args.out, arch, named, suffix)


def _describe(contract: ModelContract, args: argparse.Namespace) -> str:
    pre = contract.preprocessing
    batch = "batch 1" if args.fixed_batch else "dynamic batch"
    return f"{contract.arch} ({pre.height}x{pre.width}, {batch})"


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from omnireid.deploy.onnx import check_opset, export_verified_onnx

    check_opset(args.opset)
    model, contract, out = model_and_contract(args, ".onnx")
    diff = export_verified_onnx(  # raises (exit 2, nothing written) above 1e-4
        model, out, contract, dynamic_batch=not args.fixed_batch, opset=args.opset
    )
    print(f"exported {_describe(contract, args)}, opset {args.opset} -> {out}")
    print(f"ONNX Runtime vs PyTorch: max abs diff {diff:.3g} (tolerance 1e-4)")
    if args.int8_calib:
        from omnireid.deploy.quantize import export_onnx_int8

        calib, check, how = _calibration(args, contract)
        int8 = out.with_suffix(".int8.onnx")
        found = export_onnx_int8(  # raises (exit 2, nothing written) below the int8 bound
            out,
            int8,
            contract,
            calib,
            check,
            method=args.calib_method,
            full_range=_full_range(args),
        )
        print(f"int8 ({how}, {args.calib_method}) -> {int8}")
        print(f"int8 vs fp32 on held-out images: {found}")
    return 0


def cmd_export_openvino(args: argparse.Namespace) -> int:
    from omnireid.deploy.openvino import export_openvino

    model, contract, out = model_and_contract(args, ".xml")
    diff = export_openvino(model, out, contract, dynamic_batch=not args.fixed_batch)
    print(f"exported {_describe(contract, args)}, fp32 -> {out} (+ {out.with_suffix('.bin')})")
    print(f"OpenVINO vs PyTorch: max abs diff {diff:.3g} (tolerance 1e-4)")
    if args.bf16:
        from omnireid.deploy.openvino import export_openvino_bf16

        bf16 = out.with_suffix(".bf16.xml")
        found = export_openvino_bf16(out, bf16, contract)
        print(f"bf16 (fp32 weights, runtime hint bf16) -> {bf16}")
        print(f"bf16 vs fp32 on a seeded random batch: {found}")
    if args.int8_calib:
        from omnireid.deploy.quantize import export_openvino_int8

        calib, check, how = _calibration(args, contract)
        int8 = out.with_suffix(".int8.xml")
        found = export_openvino_int8(
            out, int8, contract, calib, check, full_range=_full_range(args)
        )
        print(f"int8 ({how}, NNCF) -> {int8} (+ {int8.with_suffix('.bin')})")
        print(f"int8 vs fp32 on held-out images: {found}")
    return 0
