"""``omnireid adapt``: adapt a trained model to a new site's unlabelled images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnireid.cli.common import float_in, non_negative_int, pixels, positive_int
from omnireid.errors import UsageError

# Cluster Contrast's optimisation (Dai et al. 2021): Adam 3.5e-4, weight decay 5e-4; here with
# a cosine decay over the rounds, P x K = 16 x 4 batches
DEFAULTS = [
    "train.task=adapt",
    "optim.name=adam",
    "optim.lr=0.00035",
    "optim.weight_decay=0.0005",
    "optim.schedule=cosine",
    "data.batch_size=64",
    "data.num_instances=4",
    "data.workers=0",
    "data.flip=true",
    "data.random_crop=true",
    "data.random_erasing=true",
    "test.metric=cosine",
]


def register(sub: Any) -> None:
    p = sub.add_parser("adapt", help="adapt a model to a new site's cameras without labels")
    p.add_argument("--weights", required=True, help="the model to adapt (run, checkpoint, file)")
    p.add_argument("--images", help="the site's unlabelled crops: a folder or a custom CSV")
    p.add_argument("--dataset", help="a benchmark: its train split is the target (if no "
                   "--images) and its query/gallery the test set")  # fmt: skip
    p.add_argument("--root", help="where --dataset lives")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, curves.png)")
    p.add_argument("--epochs", type=positive_int, default=30, help="rounds (default 30)")
    p.add_argument(
        "--minutes",
        type=float_in(0, open_lo=True),
        help="a wall-clock budget instead of --epochs",
    )
    p.add_argument("--height", type=pixels, default=256, help="input height (default 256)")
    p.add_argument("--width", type=pixels, default=128, help="input width (default 128)")
    p.add_argument(
        "--eval-every", type=non_negative_int, default=5, help="rounds between evaluations"
    )
    p.add_argument("--adabn-only", action="store_true", help="only re-estimate BatchNorm stats")
    p.add_argument("--config", help="a config file with more settings ([adapt], [optim] ...)")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. adapt.eps=0.5")
    p.set_defaults(func=cmd_adapt)


def cmd_adapt(args: argparse.Namespace) -> int:
    from omnireid.config import load_config
    from omnireid.tasks import fit_from_config
    from omnireid.tasks.adapt import adabn_from_config

    if not args.images and not args.dataset:
        raise UsageError("give --images (the site's crops) or --dataset/--root (a benchmark)")
    if args.dataset and not args.root:
        raise UsageError("--dataset needs --root")
    settings = [
        *DEFAULTS,
        f"model.weights={args.weights}",
        f"data.height={args.height}",
        f"data.width={args.width}",
        f"train.out_dir={args.out}",
        f"train.eval_every={args.eval_every}",
    ]
    if args.images:
        settings.append(f"adapt.images={args.images}")
    if args.dataset:
        settings += [f"data.dataset={args.dataset}", f"data.root={args.root}"]
        if args.images:  # the benchmark is then only the test set
            settings += [f"data.target={args.dataset}", f"data.target_root={args.root}"]
    if args.minutes:
        settings += ["optim.max_epoch=1000", f"train.budget_minutes={args.minutes}"]
    else:
        settings.append(f"optim.max_epoch={args.epochs}")
    config = load_config(args.config, [*settings, *args.overrides])
    if args.adabn_only:
        metrics = adabn_from_config(config)
        shown = "  ".join(f"{k} {v:.2f}" for k, v in metrics.items())
        print(f"AdaBN: {shown or 'no test set given'}; model: {args.out}")
        return 0
    args.interrupt_note = f"{args.out} keeps every completed round; run again to resume"
    records = fit_from_config(config)
    if records:
        from omnireid.visualize.curves import plot_training_curves, read_log

        plot_training_curves(read_log(args.out), Path(args.out) / "curves.png")
    final = records[-1] if records else {}
    keys = ("rank1", "mAP", "clusters", "outliers", "purity")
    shown = "  ".join(f"{k} {final[k]:.2f}" for k in keys if k in final)
    print(f"adapted for {final.get('epoch', '(already complete)')} rounds: {shown}")
    print(f"model: {args.out} (use it as --weights {args.out})")
    return 0
