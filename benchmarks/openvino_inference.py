"""OpenVINO (fp32, bf16, int8) against ONNX Runtime fp32 on this CPU: images/s and ratios.

    python benchmarks/openvino_inference.py [--arch osnet_x0_25 osnet_x1_0] [--batch 1 32]
           [--rounds 3 --seconds 2] [--threads N]

A view of ``omnireid bench`` (``omnireid.deploy.bench``, which it calls): the same seeded
random model exported once to ONNX; ONNX Runtime runs the file (workers not spinning), OpenVINO
the IR read from it, compiled for the CPU with an f32 hint, a bf16 hint, and its NNCF int8
copy (calibrated on random images: speed only; ``benchmarks/quantized_market.py`` has the
accuracy). Alternating rounds of ``--seconds`` each, median round, all with ``--threads``
threads (default: torch's count). Printed per path: images/s, the ratio to ONNX Runtime fp32
and the fraction of the precision's peak. "openvino bf16" is OpenVINO's own default on CPUs
with bf16 units (AMX, AVX512-BF16); omnireid compiles with an explicit hint either way.
"""

from __future__ import annotations

import argparse

import torch
from common import machine

from omnireid.deploy.bench import bench, format_row, measure_peaks

PATHS = ("onnxruntime fp32", "openvino fp32", "openvino bf16", "openvino int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", nargs="+", default=["osnet_x0_25", "osnet_x1_0"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime
    import openvino

    print(
        f"machine: {machine()}; onnxruntime {onnxruntime.__version__}, openvino "
        f"{openvino.__version__}; 256x128, median of {args.rounds} alternating rounds"
    )
    peaks = measure_peaks(args.threads)
    for arch in args.arch:
        for batch in args.batch:
            rows = bench(
                arch, batch, paths=PATHS, seconds=args.seconds, rounds=args.rounds, peaks=peaks
            )
            base = next(r for r in rows if r.path == "onnxruntime fp32").images_per_s
            for row in rows:
                rounds = [round(r, 1) for r in row.rounds]
                print(f"{arch:<12} batch {batch:>3}  {format_row(row)}  rounds {rounds}")
            for row in rows[1:]:
                ratio = row.images_per_s / base
                print(f"{arch:<12} batch {batch:>3}  {row.path} / onnxruntime fp32: x{ratio:.2f}")


if __name__ == "__main__":
    main()
