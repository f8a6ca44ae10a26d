"""Training images/s on real Market-1501: omnireid's engine vs the reference engine (torchreid).

Same model (OSNet x0.25, 751 classes, random init), batch, input size (128x64 by default),
augmentation (flip + random 1.125x crop), optimiser (AMSGrad) and loss (label-smoothed
cross-entropy). Each side runs in its own fresh subprocess in this one invocation:
- reference: torchreid 0.2.5's ``ImageDataManager`` train loader + ``ImageSoftmaxEngine``'s
  ``forward_backward`` step (its training loop without the logging);
- ours: ``omnireid.tasks.reid.reid_train_loader`` + ``omnireid.engine.loop.train_step`` with the
  options the training config exposes (``--ours-options``, see ``main``).
Both time ``--batches`` steps after ``--warmup`` untimed ones, loading included, and print
images/s, for ``--repeats`` interleaved runs per side; the last line is the ratio of the
medians. Needs ../shared (skips otherwise) and the ``reference`` extra.
With ``--bf16`` a third side times ours with bf16 autocast (``train.amp=bf16``).
Usage: python benchmarks/train_speed.py [--batches 40] [--repeats 3] [--workers 0]
       [--ours-options data.cache_images=true] [--bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("reference", "ours", "ours-bf16")
DATA = ROOT.parent / "shared" / "data" / "market1501"


def time_loop(batches, step, warmup: int, count: int) -> float:
    """Images/s over ``count`` steps after ``warmup`` untimed ones (loading included)."""
    seen, start = 0, 0.0
    for i, batch in enumerate(batches()):
        images, pids = batch[0], batch[1]
        if i == warmup:
            seen, start = 0, time.perf_counter()
        step(images, pids)
        seen += len(pids)
        if i + 1 == warmup + count:
            return seen / (time.perf_counter() - start)
    raise RuntimeError("the loader ran out of batches; lower --batches")


def run_reference(args: argparse.Namespace) -> float:
    import warnings

    warnings.simplefilter("ignore")
    import torch
    import torchreid

    torch.manual_seed(0)
    manager = torchreid.data.ImageDataManager(
        root=str(DATA.parent),
        sources="market1501",
        height=args.height,
        width=args.width,
        transforms=["random_flip", "random_crop"],
        batch_size_train=args.batch_size,
        workers=args.workers,
        use_gpu=False,
    )
    model = torchreid.models.build_model("osnet_x0_25", num_classes=751, pretrained=False)
    optimizer = torchreid.optim.build_optimizer(model, optim="amsgrad", lr=0.0015)
    engine = torchreid.engine.ImageSoftmaxEngine(manager, model, optimizer, use_gpu=False)
    model.train()

    def batches():
        for data in manager.train_loader:
            yield data["img"], data["pid"]

    return time_loop(
        batches,
        lambda imgs, pids: engine.forward_backward({"img": imgs, "pid": pids}),
        args.warmup,
        args.batches,
    )


def run_ours(args: argparse.Namespace) -> float:
    import torch

    from omnireid.config import load_config
    from omnireid.data.datasets import load_dataset
    from omnireid.engine.loop import train_step, training_layout
    from omnireid.engine.optim import build_optimizer
    from omnireid.losses import compute_losses
    from omnireid.models import build
    from omnireid.tasks import resolve_amp
    from omnireid.tasks.reid import reid_train_loader

    torch.manual_seed(0)
    overrides = [
        f"data.height={args.height}",
        f"data.width={args.width}",
        f"data.batch_size={args.batch_size}",
        f"data.workers={args.workers}",
        "data.random_crop=true",
        *args.ours_options,
        *(["train.amp=bf16"] if args.side == "ours-bf16" else []),
    ]
    config = load_config(None, overrides)
    dataset = load_dataset("market1501", DATA)
    loader = reid_train_loader(config, dataset)[0]
    model = build("osnet_x0_25", num_classes=dataset.num_train_pids).train()
    layout = training_layout(model, config.train.channels_last)  # as fit_from_config does
    optimizer = build_optimizer(model, "amsgrad", 0.0015)

    amp = resolve_amp(config.train.amp, "cpu")

    def step(images: torch.Tensor, pids: torch.Tensor) -> None:
        images = images.contiguous(memory_format=layout)
        train_step(model, images, pids, optimizer, compute_losses, amp=amp)

    return time_loop(
        lambda: iter(loader),
        step,
        args.warmup,
        args.batches,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="loader workers, both sides")
    parser.add_argument("--ours-options", nargs="*", default=[], help="config overrides")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved runs per side; the median counts"
    )
    parser.add_argument(
        "--bf16", action="store_true", help="also time ours with train.amp=bf16 (ratio to ours)"
    )
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run = run_reference if args.side == "reference" else run_ours
        print(json.dumps({"images_per_s": run(args)}))
        return
    if not DATA.is_dir():
        print(f"skipped: Market-1501 not found at {DATA}")
        return
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, "
        f"{platform.processor() or 'cpu'}; batch {args.batch_size}, {args.height}x{args.width}, "
        f"{args.workers} loader workers, {args.batches} timed steps"
    )
    sides = SIDES if args.bf16 else SIDES[:2]
    rates: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits both
        for side in sides:
            out = subprocess.run(
                [sys.executable, __file__, "--side", side, *sys.argv[1:]],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rates[side].append(json.loads(out.strip().splitlines()[-1])["images_per_s"])
            print(f"{side:>9}: {rates[side][-1]:.1f} images/s", flush=True)
    ref, ours = statistics.median(rates["reference"]), statistics.median(rates["ours"])
    print(f"median: reference {ref:.1f}, ours {ours:.1f} images/s")
    print(f"ratio ours/reference: {ours / ref:.2f}x")
    if args.bf16:
        bf16 = statistics.median(rates["ours-bf16"])
        print(
            f"ours bf16 {bf16:.1f} images/s: {bf16 / ref:.2f}x the reference, "
            f"{bf16 / ours:.2f}x ours fp32"
        )


if __name__ == "__main__":
    main()
