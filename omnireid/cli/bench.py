"""``omnireid bench``: images/s of every inference path this machine has, its ratio to the
reference model and its fraction of the precision's peak (``deploy.bench``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import asdict
from typing import Any

from omnireid.cli.common import check_output_file, float_in, pixels, positive_int

UNIT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx_vnni", "avx512_vnni", "amx_int8")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="images/s of every inference path here, vs the reference and the peak"
    )
    p.add_argument(
        "--arch", nargs="+", help="architectures (default osnet_x0_25, or what --weights holds)"
    )
    p.add_argument("--batch", nargs="+", type=positive_int, default=[32], help="batch sizes (32)")
    p.add_argument("--weights", help="a real model instead of seeded random weights")
    p.add_argument("--height", type=pixels, default=256, help="input height (256)")
    p.add_argument("--width", type=pixels, default=128, help="input width (128)")
    p.add_argument(
        "--paths",
        nargs="+",
        metavar="PATH",
        help="what to measure, e.g. 'fast fp32' 'openvino bf16' (default: every path the "
        "machine has: reference, torch and fast fp32, fast bf16, onnxruntime fp32/int8, "
        "openvino fp32/bf16/int8)",
    )
    p.add_argument(
        "--calib",
        metavar="DIR",
        help="calibrate the int8 paths on images in DIR and run others of DIR (default: random "
        "images; with --weights and DIR each row also gives the cosine to fp32)",
    )
    p.add_argument(
        "--seconds", type=float_in(0, 60, open_lo=True), default=2.0, help="per round (2)"
    )
    p.add_argument("--rounds", type=positive_int, default=3, help="alternating rounds (3)")
    p.add_argument(
        "--threads", type=positive_int, help="threads for every runtime (default: torch's)"
    )
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from omnireid.deploy.bench import PATHS, bench, format_row, measure_peaks
    from omnireid.deploy.peak import cpu_flags
    from omnireid.errors import UsageError

    check_output_file(args.json, "--json")
    unknown = sorted(set(args.paths or ()) - set(PATHS))
    if unknown:
        raise UsageError(f"--paths {unknown}: the paths are {', '.join(PATHS)}")
    if args.weights and args.arch and len(args.arch) > 1:
        raise UsageError("--weights fixes the architecture: give one --arch or none")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    peaks = measure_peaks(threads)
    flags = cpu_flags()
    units = [name for name in UNIT_FLAGS if name in flags]
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores ({' '.join(units) or 'no SIMD'}), "
        f"torch {torch.__version__}, {threads} threads; median of {args.rounds} rounds"
    )
    print(
        "peaks (all threads): "
        + ", ".join(
            f"{p} {peak.gops:.0f} Gop/s ({peak.kernel})" if peak else f"{p} none"
            for p, peak in peaks.items()
        )
    )
    payload: dict[str, Any] = {"machine": platform.machine(), "threads": threads, "runs": []}
    payload["peaks"] = {p: (peak.ops_per_s if peak else None) for p, peak in peaks.items()}
    input_size = (args.height, args.width)
    archs = args.arch or ([None] if args.weights else ["osnet_x0_25"])
    for arch in archs:
        for batch in args.batch:
            rows = bench(
                arch,
                batch,
                weights=args.weights,
                input_size=input_size,
                paths=args.paths or PATHS,
                calib=args.calib,
                seconds=args.seconds,
                rounds=args.rounds,
                peaks=peaks,
                flags=flags,
            )
            name = args.weights or arch
            height, width = input_size
            print(f"{name}, batch {batch}, {height}x{width} (ratios to {rows[0].baseline}):")
            for row in rows:
                print(f"  {format_row(row)}")
            payload["runs"].append(
                {"arch": name, "batch": batch, "rows": [asdict(r) for r in rows]}
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    return 0
