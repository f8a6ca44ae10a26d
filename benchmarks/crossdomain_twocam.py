"""TPAMI'21's claim in miniature: does OSNet-AIN generalise better to unseen cameras than OSNet?

Trains OSNet x0.25 and OSNet-AIN x0.25 on Market-1501 under one CPU recipe, the TPAMI
cross-domain recipe scaled down (from scratch instead of ImageNet weights, 128x64, AMSGrad lr
0.003 with a cosine schedule and 1 warm-up epoch, random flip + colour jitter and no random
erasing, label-smoothed CE, batch 64; the paper's 100 epochs for a Market-1501 source), one
run per architecture and seed. Each is then tested, with the paper's cosine distance, on
Market-1501 itself and on ../shared/data/twocam/crosscam.csv: a real 2-camera street set of 74
people none of the training data contains (camera-1 images as queries, camera-2 as gallery).
Prints the table per run and the mean over seeds, and writes it as JSON.
Usage: python benchmarks/crossdomain_twocam.py [--seeds 0 1] [--epochs 100]
       [--runs runs/twocam] [--json runs/twocam/table.json] [--zoo]
       (finished runs in --runs are reused: only the evaluation runs again)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine, score
from train_market_cpu import DEFAULT_DATA, overrides
from zoo_entry import logged_run, write_zoo_entry

from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.tasks import fit_from_config

ROOT = Path(__file__).resolve().parents[1]
TWOCAM = ROOT.parent / "shared" / "data" / "twocam" / "crosscam.csv"
ARCHS = ("osnet_x0_25", "osnet_ain_x0_25")
RECIPE = [
    "data.random_crop=false",
    "data.random_erasing=false",
    "data.color_jitter=true",
    "test.metric=cosine",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--twocam", type=Path, default=TWOCAM)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "twocam")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--zoo", action="store_true", help="put every model in the zoo")
    parser.add_argument("--note", default="", help="a note for the zoo cards")
    args = parser.parse_args()
    if not args.root.is_dir() or not args.twocam.is_file():
        print(f"skipped: needs {args.root} and {args.twocam} (../shared)")
        return
    print(f"machine: {machine()}")
    datasets = {
        "market1501": load_dataset("market1501", args.root),
        "twocam": load_dataset("custom", args.twocam),
    }
    results = []
    for seed in args.seeds:
        for arch in ARCHS:
            run = args.runs / f"{arch}_s{seed}"
            extra = [*RECIPE, f"model.arch={arch}", f"train.seed={seed}"]
            extra.append(f"optim.max_epoch={args.epochs}")
            started = time.perf_counter()
            config = load_config(None, overrides(args.root, run, extra))
            records = fit_from_config(config)
            minutes = (time.perf_counter() - started) / 60
            trained = f"{len(records)} epochs in {minutes:.0f} min" if records else "reused"
            metrics = score(run, datasets)
            results.append({"arch": arch, "seed": seed, **metrics})
            if args.zoo:
                if not records:  # reused: the time is the one its log recorded
                    records, minutes = logged_run(run)
                roots = {"market1501": str(args.root), "twocam": str(args.twocam)}
                summary = (
                    f"{arch} trained from scratch on Market-1501 with the TPAMI cross-domain "
                    "recipe scaled down to a CPU (128x64, flip + colour jitter, cosine)"
                )
                name = f"{arch}_market_tpami_cpu_s{seed}"
                write_zoo_entry(
                    run, name, summary, config, records, minutes, metrics, roots, note=args.note
                )
            m, t = metrics["market1501"], metrics["twocam"]
            print(
                f"{arch} seed {seed} ({trained}): Market R1 "
                f"{m['rank1']:.1f} mAP {m['mAP']:.1f} | twocam R1 {t['rank1']:.1f} "
                f"R5 {t['rank5']:.1f} mAP {t['mAP']:.1f}"
            )
    print("\n| model | seeds | Market-1501 R1 / mAP | twocam R1 / R5 / mAP |")
    print("|---|---|---|---|")
    for arch in ARCHS:
        rows = [r for r in results if r["arch"] == arch]

        def mean(data: str, key: str, rows: list = rows) -> float:
            return sum(r[data][key] for r in rows) / len(rows)

        print(
            f"| {arch} | {len(rows)} | {mean('market1501', 'rank1'):.1f} / "
            f"{mean('market1501', 'mAP'):.1f} | {mean('twocam', 'rank1'):.1f} / "
            f"{mean('twocam', 'rank5'):.1f} / {mean('twocam', 'mAP'):.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
