"""``omnireid train | demo | curves``: training runs and what they leave behind."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnireid.cli.common import int_in, positive_int


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model from a YAML/TOML/JSON config")
    p.add_argument("--config", help="config file (.yaml/.yml/.toml/.json); defaults otherwise")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. optim.lr=0.003")
    p.add_argument(
        "--task",
        choices=("reid", "attributes", "nas", "classify"),
        help="same as train.task=...: re-ID (default), attributes, the IN search, or CIFAR",
    )
    p.add_argument(
        "--extend",
        action="store_true",
        help="same as train.extend=true: continue a run with a new optim.max_epoch/milestones",
    )
    p.add_argument(
        "--all-splits",
        action="store_true",
        help="VIPeR/GRID/CUHK01: train and test one model per split (out_dir/splitK), average",
    )
    p.add_argument(
        "--seeds",
        type=int_in(0, 2**32 - 1),
        nargs="+",
        help="train.task=nas: search with each seed, retrain each child (--retrain), keep the best",
    )
    p.add_argument(
        "--retrain",
        help="with --seeds: the re-ID recipe children are trained with (data.target judges them)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="synthetic world, CPU training, evaluation, report")
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--epochs", type=positive_int, default=8, help="training epochs (default 8)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("curves", help="plot loss, accuracy, lr and R1/mAP of a training run")
    p.add_argument("run", help="run folder (or its log.jsonl)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.set_defaults(func=cmd_curves)


def cmd_train(args: argparse.Namespace) -> int:
    from omnireid.config import load_config
    from omnireid.tasks import fit_from_config

    overrides = list(args.overrides) + (["train.extend=true"] if args.extend else [])
    flags = {"train.task": ("--task", args.task)} if args.task else {}
    config = load_config(args.config, overrides, flags=flags)
    args.interrupt_note = (
        f"the run folder {config.train.out_dir} keeps every completed epoch; run the same "
        "command again to resume"
    )
    if args.seeds or args.retrain:
        from omnireid.errors import UsageError
        from omnireid.tasks.seeds import search_seeds

        if not (args.seeds and args.retrain):
            raise UsageError("--seeds and --retrain go together (search, then retrain children)")
        summary = search_seeds(config, load_config(args.retrain), args.seeds)
        print(
            f"chosen child: seed {summary['chosen']['seed']} -> {summary['chosen']['spec']} "
            f"(table: {config.train.out_dir}/seeds.md)"
        )
        return 0
    if args.all_splits:
        from omnireid.tasks import fit_all_splits

        summary = fit_all_splits(config)
        mean = "  ".join(f"{k} {v:.2f}" for k, v in summary["mean"].items())
        print(f"{summary['dataset']}, mean of {len(summary['splits'])} splits: {mean}")
        from omnireid.rundir import RunDir

        print(f"per split: {RunDir(Path(config.train.out_dir)).splits}")
        return 0
    records = fit_from_config(config)
    final = records[-1] if records else {}
    keys = ("rank1", "mAP", "mA", "accuracy", "error", "precision", "recall", "f1", "loss", "acc")
    shown = {k: round(v, 2) for k, v in final.items() if k in keys}
    print(f"trained to epoch {final.get('epoch', '(already complete)')}: {shown}")
    print(f"run folder: {config.train.out_dir}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from omnireid.tasks.demo import run_demo

    print(
        f"omnireid demo: synthetic world -> OSNet x0.25 trained on CPU -> evaluation ({args.out})"
    )
    result = run_demo(args.out, epochs=args.epochs)
    for name in ("untrained", "trained"):
        m = result[name]
        print(f"{name:>10}: R1 {m['rank1']:5.1f}  R5 {m['rank5']:5.1f}  mAP {m['mAP']:5.1f}")
    from omnireid.rundir import RunDir

    beside = f"{RunDir.CURVES}, ranking/index.html, {RunDir.METRICS}"
    print(f"report: {args.out}/report.md ({beside} beside it)")
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from omnireid.visualize.curves import plot_training_curves, read_log

    records = read_log(args.run)
    print(f"{len(records)} epochs -> {plot_training_curves(records, args.out)}")
    return 0
