"""Train OSNet x0.25 at 128x64 from scratch on the full Market-1501 within a wall-clock budget.

What 60 minutes on a 2-core CPU buys (the paper's full 350-epoch run of this configuration,
Table 6: R1 88.7 / mAP 71.8). The script measures the
training speed on the first batches, fits a cosine schedule into the time left (keeping time
for the final evaluation), trains, evaluates and prints the metrics and the time used.
Recipe: AMSGrad lr 0.003, cosine with 1 warm-up epoch, batch 64, flip + random crop + random
erasing, label-smoothed CE; decoded images cached in memory, no loader process (2 cores),
channels_last training.
Usage: python benchmarks/train_market_cpu.py [--minutes 60] [--root ../shared/data/market1501]
       [--out runs/market_cpu] [--set KEY=VALUE ...]
       (needs ../shared or --root; re-running resumes the run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.tasks import fit_from_config
from omnireid.tasks.reid import reid_train_loader

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "market1501"
SAFETY = 1.05  # epochs run a little slower than the timed steps (evaluation, epoch ends)


def overrides(root: Path, out: Path, epochs: int, extra: Sequence[str] = ()) -> list[str]:
    return [
        "model.arch=osnet_x0_25",
        "data.dataset=market1501",
        f"data.root={root}",
        "data.height=128",
        "data.width=64",
        "data.batch_size=64",
        "data.workers=0",  # on 2 cores a loader process only competes with the model
        "data.cache_images=true",
        "data.random_crop=true",
        "data.random_erasing=true",
        "optim.name=amsgrad",
        "optim.lr=0.003",
        "optim.schedule=cosine",
        f"optim.max_epoch={epochs}",
        "optim.warmup_epochs=1",
        f"train.out_dir={out}",
        "train.keep=2",
        *extra,
    ]


def seconds_per_epoch(
    root: Path, out: Path, extra: Sequence[str], batches: int = 40, warmup: int = 5
) -> float:
    """Time real training steps (loading, forward, backward, step) on this machine.

    The ``warmup`` untimed steps also drain the batches the loader prefetched, which would
    otherwise make the estimate optimistic.
    """
    from omnireid.engine.loop import train_step, training_layout
    from omnireid.engine.optim import build_optimizer
    from omnireid.losses import compute_losses
    from omnireid.models import build

    config = load_config(None, overrides(root, out, 1, extra))
    dataset = load_dataset("market1501", root)
    loader, _ = reid_train_loader(config, dataset)
    model = build(config.model.arch, num_classes=dataset.num_train_pids).train()
    layout = training_layout(model, config.train.channels_last)  # as fit_from_config does
    optimizer = build_optimizer(model, "amsgrad", 0.003)
    start, seen, step = time.perf_counter(), 0, 0
    while step < batches + warmup:
        for batch in loader:  # small datasets: go round again
            if step == warmup:
                start, seen = time.perf_counter(), 0
            images = batch[0].contiguous(memory_format=layout)
            train_step(model, images, batch[1], optimizer, compute_losses)
            seen += len(batch[1])
            step += 1
            if step == batches + warmup:
                break
    return (time.perf_counter() - start) / seen * len(dataset.train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "market_cpu")
    parser.add_argument(
        "--epochs", type=int, default=None, help="train this many epochs instead of planning"
    )
    parser.add_argument("--time-only", action="store_true", help="print s/epoch and stop")
    parser.add_argument("--eval-minutes", type=float, default=2.0, help="time kept for evaluation")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="more training config overrides"
    )
    args = parser.parse_args()
    if not args.root.is_dir():
        print(f"skipped: Market-1501 not found at {args.root}")
        return
    started = time.perf_counter()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}")
    if args.epochs is None or args.time_only:
        per_epoch = seconds_per_epoch(args.root, args.out, args.set)
        budget = args.minutes * 60 - (time.perf_counter() - started) - args.eval_minutes * 60
        epochs = max(1, int(budget // (per_epoch * SAFETY)))
        print(f"~{per_epoch:.0f} s per epoch -> {epochs} epochs in {args.minutes:.0f} minutes")
        if args.time_only:
            return
    else:
        epochs = args.epochs
        print(f"{epochs} epochs (fixed with --epochs)")
    config = load_config(None, overrides(args.root, args.out, epochs, args.set))
    records = fit_from_config(config)
    final = records[-1] if records else json.loads((args.out / "metrics.json").read_text())
    minutes = (time.perf_counter() - started) / 60
    print(
        f"R1 {final['rank1']:.1f}  R5 {final['rank5']:.1f}  mAP {final['mAP']:.1f}  "
        f"after {final['epoch']} epochs, {minutes:.1f} minutes in all"
    )


if __name__ == "__main__":
    main()
