"""Inference images/s of the fast path against the plain model and the reference package.

Same weights (random, with BN statistics randomised), 256x128 input, fp32, torch's default
threads. For each architecture and batch size it prints images/s of: the reference
torchreid 0.2.5 model (if installed), our plain model (NCHW), our plain model channels_last,
``optimize_for_inference`` (the default fast path) and the same with ``level_streams=True``;
ratios are against the reference measured in the same run (else our plain model), and the
largest feature difference of each path against the plain model.
Usage: python benchmarks/fast_inference.py [--arch osnet_x0_25 osnet_x1_0] [--batch 1 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import torch
from torch import nn

from omnireid.deploy.fast import optimize_for_inference
from omnireid.models import build
from omnireid.runtime import tune_allocator


def images_per_second(fn, x: torch.Tensor, min_seconds: float = 3.0) -> float:
    with torch.inference_mode():
        fn(x)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            fn(x)
            count += x.shape[0]
    return count / (time.perf_counter() - start)


def reference_model(arch: str) -> nn.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchreid.reid.models import osnet
    except ImportError:
        return None
    return getattr(osnet, arch)(num_classes=10, pretrained=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", nargs="+", default=["osnet_x0_25", "osnet_x1_0"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    args = parser.parse_args()
    tune_allocator()
    print(
        f"machine: {platform.machine()} {platform.processor()} {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32, 256x128"
    )
    for arch in args.arch:
        torch.manual_seed(0)
        model = build(arch, num_classes=10)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        model.eval()
        ref = reference_model(arch)
        paths = {}
        if ref is not None:
            ref.load_state_dict(_to_reference(model, ref))
            paths["reference (torchreid)"] = ref.eval()
        paths["plain"] = model
        plain_cl = build(arch, num_classes=10).eval()
        plain_cl.load_state_dict(model.state_dict())
        plain_cl = plain_cl.to(memory_format=torch.channels_last)
        paths["plain channels_last"] = lambda x, m=plain_cl: m(
            x.contiguous(memory_format=torch.channels_last)
        )
        paths["fast (default)"] = optimize_for_inference(model)
        paths["fast + level_streams"] = optimize_for_inference(model, level_streams=True)
        for batch in args.batch:
            x = torch.randn(batch, 3, 256, 128)
            with torch.inference_mode():
                expected = model(x)
            base = None
            for name, fn in paths.items():
                ips = images_per_second(fn, x)
                base = base or ips
                with torch.inference_mode():
                    diff = (fn(x) - expected).abs().max().item()
                print(
                    f"{arch:<12} batch {batch:>3}  {name:<22} {ips:8.1f} img/s  "
                    f"x{ips / base:5.2f}  max|diff| {diff:.1e}"
                )


def _to_reference(model: nn.Module, ref: nn.Module) -> dict[str, torch.Tensor]:
    """Our state_dict renamed to the reference osnet.py layout (inverse of weights.py)."""
    streams = "abcd"
    out = {}
    for k, v in model.state_dict().items():
        parts = k.split(".")
        if len(parts) > 5 and parts[2] == "conv2" and parts[4] == "layers":
            t, j, rest = int(parts[3]), parts[5], ".".join(parts[6:])
            k = f"{parts[0]}.{parts[1]}.conv2{streams[t]}." + (f"{j}.{rest}" if t else rest)
        elif parts[0] in ("pool2", "pool3"):
            k = f"conv{parts[0][-1]}.2." + ".".join(parts[1:])
        out[k] = v
    missing = set(ref.state_dict()) - set(out)
    if missing:
        raise RuntimeError(f"layout conversion incomplete: {sorted(missing)[:5]}")
    return out


if __name__ == "__main__":
    main()
