"""Train OSNet x0.25 at 128x64 from scratch on the full Market-1501 within a wall-clock budget.

What 60 minutes on a 2-core CPU buys from random weights (Table 6's row for this width and size,
R1 88.7 / mAP 71.8, was fine-tuned from ImageNet for 150 epochs: benchmarks/iccv_table6.py).
The budget is the library's ``train.budget_minutes``: the cosine schedule follows elapsed time
and the run ends, and evaluates, when another epoch would not fit, however fast or slow the
machine turns out to be; ``--set train.budget_clock=cpu`` counts the process's CPU time
instead, a fair budget when other jobs share the machine (run with one torch thread, it is
core-minutes). ``--epochs N`` trains a fixed number of epochs instead (to compare recipes at
equal work).
Recipe: AMSGrad lr 0.003, cosine with 1 warm-up epoch, batch 64, flip + random crop + random
erasing, label-smoothed CE; decoded images cached in memory, no loader process (2 cores),
channels_last training; ``--set KEY=VALUE`` changes any of it (e.g. the triplet term).
Usage: python benchmarks/train_market_cpu.py [--minutes 60 | --epochs N]
       [--root ../shared/data/market1501] [--out runs/market_cpu] [--set KEY=VALUE ...]
       [--zoo NAME --summary TEXT]   (also put the model in the zoo, omnireid/zoo/NAME)
       (needs ../shared or --root; re-running resumes an interrupted run, a budgeted one with
       the budget it had spent, and reuses a finished one)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from common import machine, score
from zoo_entry import logged_run, write_zoo_entry

from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.tasks import fit_from_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "market1501"
MAX_EPOCHS = 1000  # the budget decides; this only bounds it


def overrides(root: Path, out: Path, extra: Sequence[str] = ()) -> list[str]:
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
        "optim.warmup_epochs=1",
        f"train.out_dir={out}",
        "train.keep=2",
        *extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget")
    parser.add_argument("--epochs", type=int, default=None, help="fixed epochs, no budget")
    parser.add_argument("--root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "market_cpu")
    parser.add_argument("--eval-minutes", type=float, default=1.5, help="kept for evaluation")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="more training config overrides"
    )
    parser.add_argument("--zoo", help="write the trained model into the zoo under this name")
    parser.add_argument("--summary", default="", help="the zoo card's one-line description")
    parser.add_argument("--note", default="", help="a note for the zoo card")
    args = parser.parse_args()
    if not args.root.is_dir():
        print(f"skipped: Market-1501 not found at {args.root}")
        return
    started = time.perf_counter()
    print(f"machine: {machine()}")
    if args.epochs is not None:
        plan = [f"optim.max_epoch={args.epochs}"]
        print(f"{args.epochs} epochs (fixed with --epochs)")
    else:
        plan = [
            f"optim.max_epoch={MAX_EPOCHS}",
            f"train.budget_minutes={args.minutes}",
            f"train.budget_reserve_minutes={args.eval_minutes}",
        ]
        print(f"{args.minutes:g}-minute budget: the schedule follows elapsed time")
    config = load_config(None, overrides(args.root, args.out, [*plan, *args.set]))
    records = fit_from_config(config)
    final = records[-1] if records else json.loads((args.out / "metrics.json").read_text())
    minutes = (time.perf_counter() - started) / 60
    if not records:  # a finished run reused: its time is the one its log recorded
        records, minutes = logged_run(args.out)
        print(f"reused the finished run in {args.out}")
    print(
        f"R1 {final['rank1']:.1f}  R5 {final['rank5']:.1f}  R10 {final['rank10']:.1f}  "
        f"mAP {final['mAP']:.1f}  mINP {final['mINP']:.1f}  after {final['epoch']} epochs, "
        f"{minutes:.1f} minutes in all"
    )
    spread = [round(r["feat_spread"], 3) for r in records if "feat_spread" in r]
    if spread:
        print(f"feat_spread per epoch (collapse below {config.train.collapse_spread}): {spread}")
    if args.zoo:
        # the card's numbers are measured now, by this code, whatever code trained the run
        market = {"market1501": load_dataset("market1501", args.root)}
        measured = score(args.out, market, metric=config.test.metric)
        write_zoo_entry(
            args.out,
            args.zoo,
            args.summary or "OSNet x0.25 trained from scratch on Market-1501 on a 2-core CPU",
            config,
            records,
            minutes,
            measured,
            {"market1501": args.root},
            note=args.note,
        )


if __name__ == "__main__":
    main()
