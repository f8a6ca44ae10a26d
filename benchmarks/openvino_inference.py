"""OpenVINO fp32 against ONNX Runtime fp32 on this CPU: images/s of the same exported graph.

    python benchmarks/openvino_inference.py [--arch osnet_x0_25 osnet_x1_0] [--batch 1 32]
           [--rounds 3 --seconds 2] [--threads N]

For each architecture the model (random weights, random BN statistics) is exported once to
ONNX (``export_onnx``); ONNX Runtime runs that file (``open_session``, workers not spinning)
and OpenVINO the IR made from it (``Core.read_model``), compiled for the CPU by
``compile_openvino`` with an f32 precision hint, and once more in bf16. They are timed in
alternating rounds of ``--seconds`` each and the median round is reported, with the ratio to
ONNX Runtime and the largest feature difference against PyTorch. All use ``--threads``
threads (default: torch's count). "openvino bf16" is OpenVINO's own default on CPUs with bf16
units (AMX, AVX512-BF16): faster there, but its features miss PyTorch's by ~1e-1, not 1e-4.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import random_model
from torch import nn

from omnireid.deploy.onnx import INPUT_NAME, export_onnx, open_session
from omnireid.deploy.openvino import compile_openvino

Run = Callable[[np.ndarray], np.ndarray]


def images_per_second(run: Run, x: np.ndarray, seconds: float) -> float:
    run(x)  # warm-up (first-call allocations, OpenVINO's shape inference)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(x)
        count += len(x)
    return count / (time.perf_counter() - start)


def runners(model: nn.Module, folder: Path, threads: int) -> dict[str, Run]:
    path = export_onnx(model, folder / f"{model.arch}.onnx")
    session = open_session(path, threads=threads)
    f32 = compile_openvino(path, "cpu", threads=threads)
    bf16 = compile_openvino(path, "cpu", threads=threads, precision="bf16")
    return {
        "onnxruntime": lambda x: session.run(None, {INPUT_NAME: x})[0],
        "openvino": lambda x: f32([x])[0],
        "openvino bf16": lambda x: bf16([x])[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", nargs="+", default=["osnet_x0_25", "osnet_x1_0"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    import onnxruntime
    import openvino

    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"{args.threads} threads; onnxruntime {onnxruntime.__version__}, openvino "
        f"{openvino.__version__}; fp32, 256x128, median of {args.rounds} alternating rounds"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            model = random_model(arch)
            runs = runners(model, Path(tmp), args.threads)
            for batch in args.batch:
                x = torch.randn(batch, 3, 256, 128, generator=torch.Generator().manual_seed(1))
                with torch.inference_mode():
                    expected = model(x).numpy()
                x = x.numpy()
                rounds: dict[str, list[float]] = {name: [] for name in runs}
                for _ in range(args.rounds):
                    for name, run in runs.items():
                        rounds[name].append(images_per_second(run, x, args.seconds))
                speed = {name: statistics.median(r) for name, r in rounds.items()}
                for name, run in runs.items():
                    diff = float(np.abs(run(x) - expected).max())
                    print(
                        f"{arch:<12} batch {batch:>3}  {name:<12} {speed[name]:7.1f} img/s  "
                        f"max|diff| {diff:.1e}  rounds {[round(r, 1) for r in rounds[name]]}"
                    )
                for name in ("openvino", "openvino bf16"):
                    ratio = speed[name] / speed["onnxruntime"]
                    print(f"{arch:<12} batch {batch:>3}  {name} / onnxruntime: x{ratio:.2f}")


if __name__ == "__main__":
    main()
