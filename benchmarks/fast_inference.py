"""Inference images/s of the PyTorch fast path's variants against the plain model and the
reference package.

``omnireid bench`` (``omnireid.deploy.bench``) measures every deployable path (fast fp32 and
bf16, ONNX Runtime fp32/int8, OpenVINO fp32/bf16/int8) with peaks per instruction class; this
script keeps what it does not: PyTorch-internal variants (channels_last, ``level_streams``) and
one timing window per path (not alternating rounds), with the fp32 FMA peak of
``deploy.peak`` (it used a 2048^3 matmul before, which reaches ~40% of the FMA units here).

Same weights (random, with BN statistics randomised), 256x128 input, fp32, torch's default
threads. For each architecture and batch size it prints images/s of: the reference
torchreid 0.2.5 model (if installed), our plain model (NCHW), our plain model channels_last,
``optimize_for_inference`` (the default fast path) and the same with ``level_streams=True``;
ratios are against the reference measured in the same run (else our plain model), and the
largest feature difference of each path against the plain model.
With ``--onnx`` it adds ONNX Runtime (fp32, and int8 QDQ calibrated on ``--calib`` real images
when ../shared has Market-1501, else on random ones: the speed is what counts here; the mAP
cost is ``benchmarks/quantized_market.py``'s). It also measures this CPU's fp32 FMA peak
(``deploy.peak``) and prints each path's achieved GFLOP/s (2 x mult-adds x images/s) as a
fraction of it (of the int8 VNNI peak for int8). ONNX Runtime runs last.
Usage: python benchmarks/fast_inference.py [--arch osnet_x0_25 osnet_x1_0] [--batch 1 32]
       [--onnx]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch
from common import random_model
from torch import nn

from omnireid.deploy.bench import measure_peaks, reference_model
from omnireid.models import build
from omnireid.models.complexity import count_complexity
from omnireid.models.fused import optimize_for_inference
from omnireid.runtime import tune_allocator


def images_per_second(fn, x: torch.Tensor, min_seconds: float = 3.0) -> float:
    with torch.inference_mode():
        fn(x)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            fn(x)
            count += x.shape[0]
    return count / (time.perf_counter() - start)


def calibration_images(count: int, height: int = 256, width: int = 128) -> torch.Tensor:
    """``count`` Market-1501 train images preprocessed for evaluation (random if absent)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "market1501"
    if not root.is_dir():
        return torch.randn(count, 3, height, width)
    from omnireid.data.datasets import load_dataset
    from omnireid.data.images import read_image
    from omnireid.data.transforms import build_eval_transform

    transform = build_eval_transform(height, width)
    train = load_dataset("market1501", root).train[:: max(1, 12936 // count)][:count]
    return torch.stack([transform(read_image(s.path)) for s in train])


def onnx_paths(model: nn.Module, calib: int, folder: str) -> dict[str, object]:
    """ONNX Runtime fp32 and int8 sessions of ``model`` as ``fn(x) -> features``."""
    from omnireid.deploy.onnx import INPUT_NAME, export_onnx, open_session
    from omnireid.deploy.quantize import quantize_onnx

    fp32 = export_onnx(model, f"{folder}/model.onnx")
    int8 = quantize_onnx(fp32, f"{folder}/model.int8.onnx", calibration_images(calib).numpy())
    out = {}
    for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8", int8)):
        session = open_session(path)
        out[name] = lambda x, s=session: torch.from_numpy(s.run(None, {INPUT_NAME: x.numpy()})[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", nargs="+", default=["osnet_x0_25", "osnet_x1_0"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--onnx", action="store_true", help="add ONNX Runtime fp32 and int8")
    parser.add_argument("--calib", type=int, default=256, help="int8 calibration images")
    args = parser.parse_args()
    tune_allocator()
    peaks = measure_peaks(torch.get_num_threads())
    peak = peaks["fp32"].gops if peaks["fp32"] else float("nan")
    int8_peak = peaks["int8"].gops if peaks["int8"] else float("nan")
    print(
        f"machine: {platform.machine()} {platform.processor()} {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32, 256x128; "
        f"fp32 FMA peak {peak:.0f} GFLOP/s, int8 VNNI peak {int8_peak:.0f} Gop/s"
    )
    tmp = tempfile.mkdtemp()
    for arch in args.arch:
        model = random_model(arch)
        ref = reference_model(model)
        paths = {}
        if ref is not None:
            paths["reference (torchreid)"] = ref
        paths["plain"] = model
        plain_cl = build(arch, num_classes=10).eval()
        plain_cl.load_state_dict(model.state_dict())
        plain_cl = plain_cl.to(memory_format=torch.channels_last)
        paths["plain channels_last"] = lambda x, m=plain_cl: m(
            x.contiguous(memory_format=torch.channels_last)
        )
        paths["fast (default)"] = optimize_for_inference(model)
        paths["fast + level_streams"] = optimize_for_inference(model, level_streams=True)
        if args.onnx:
            paths.update(onnx_paths(model, args.calib, tmp))
        gflop = 2 * count_complexity(model, 256, 128).mult_adds / 1e9  # per image
        for batch in args.batch:
            x = torch.randn(batch, 3, 256, 128)
            with torch.inference_mode():
                expected = model(x)
            base = None
            for name, fn in paths.items():
                ips = images_per_second(fn, x)
                base = base or ips
                top = int8_peak if name.endswith("int8") else peak
                with torch.inference_mode():
                    diff = (fn(x) - expected).abs().max().item()
                print(
                    f"{arch:<12} batch {batch:>3}  {name:<22} {ips:8.1f} img/s  "
                    f"x{ips / base:5.2f}  max|diff| {diff:.1e}  "
                    f"{ips * gflop:5.1f} GFLOP/s = {100 * ips * gflop / top:4.1f}% peak"
                )


if __name__ == "__main__":
    main()
