"""``omnireid adapt``: adapt a trained model to a new site's unlabelled images.

The recipe (optimiser, schedule, batches, augmentation, rounds) is the config defaults of
``train.task: adapt`` (``recipes.ADAPT``, shared with ``omnireid.adapt.adapt()``); the input
size is the source model's (its spec) unless ``--height``/``--width`` say otherwise, which the
task then warns about.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnireid.cli.common import float_in, non_negative_int, pixels, positive_int
from omnireid.errors import UsageError
from omnireid.recipes import ADAPT


def register(sub: Any) -> None:
    p = sub.add_parser("adapt", help="adapt a model to a new site's cameras without labels")
    p.add_argument("--weights", required=True, help="the model to adapt (run, checkpoint, file)")
    p.add_argument("--images", help="the site's unlabelled crops: a folder or a custom CSV")
    p.add_argument("--dataset", help="a benchmark: its train split is the target (if no "
                   "--images) and its query/gallery the test set")  # fmt: skip
    p.add_argument("--root", help="where --dataset lives")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, curves.png)")
    p.add_argument(
        "--epochs", type=positive_int, help=f"rounds (default {ADAPT.epochs}, the recipe's)"
    )
    p.add_argument(
        "--minutes",
        type=float_in(0, open_lo=True),
        help="a wall-clock budget instead of --epochs",
    )
    p.add_argument("--height", type=pixels, help="input height (default: the source model's)")
    p.add_argument("--width", type=pixels, help="input width (default: the source model's)")
    p.add_argument(
        "--eval-every",
        type=non_negative_int,
        help=f"rounds between evaluations (default {ADAPT.eval_every})",
    )
    p.add_argument("--adabn-only", action="store_true", help="only re-estimate BatchNorm stats")
    p.add_argument("--config", help="a config file with more settings ([adapt], [optim] ...)")
    p.add_argument("overrides", nargs="*", help="section.key=value, e.g. adapt.eps=0.5")
    p.set_defaults(func=cmd_adapt)


def cmd_adapt(args: argparse.Namespace) -> int:
    from omnireid.config import load_config
    from omnireid.tasks import fit_from_config
    from omnireid.tasks.adapt import adabn_from_config, source_spec

    if not args.images and not args.dataset:
        raise UsageError("give --images (the site's crops) or --dataset/--root (a benchmark)")
    if args.dataset and not args.root:
        raise UsageError("--dataset needs --root")
    height, width = source_spec(args.weights).input_size  # as trained, unless told otherwise
    settings = [
        "train.task=adapt",
        f"model.weights={args.weights}",
        f"data.height={args.height or height}",
        f"data.width={args.width or width}",
        f"train.out_dir={args.out}",
    ]
    if args.eval_every is not None:
        settings.append(f"train.eval_every={args.eval_every}")
    if args.images:
        settings.append(f"adapt.images={args.images}")
    if args.dataset:
        settings += [f"data.dataset={args.dataset}", f"data.root={args.root}"]
        if args.images:  # the benchmark is then only the test set
            settings += [f"data.target={args.dataset}", f"data.target_root={args.root}"]
    if args.minutes:
        settings += ["optim.max_epoch=1000", f"train.budget_minutes={args.minutes}"]
    elif args.epochs is not None:
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
        from omnireid.rundir import RunDir
        from omnireid.visualize.curves import plot_training_curves, read_log

        plot_training_curves(read_log(args.out), RunDir(Path(args.out)).curves)
    final = records[-1] if records else {}
    keys = ("rank1", "mAP", "clusters", "outliers", "purity")
    shown = "  ".join(f"{k} {final[k]:.2f}" for k in keys if k in final)
    print(f"adapted for {final.get('epoch', '(already complete)')} rounds: {shown}")
    print(f"model: {args.out} (use it as --weights {args.out})")
    return 0
