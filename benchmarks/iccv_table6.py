"""ICCV'19 Table 6, the x0.25 column: OSNet x0.25 fine-tuned from ImageNet on Market-1501 at
each input resolution, with the paper's fine-tuning recipe (configs/iccv/table6_x0_25_*.yaml:
AMSGrad lr 0.0015, batch 64, 150 epochs, x0.1 every 60, the ImageNet base frozen for the first
10 epochs, random flip + random erasing, label-smoothed CE, l2 distance).

Starts from ../shared/weights/osnet_x0_25_imagenet.pth (the reference's ImageNet x0.25
checkpoint), trains one run per row (decoded images cached in memory, no loader process),
scores each finished run on the full Market-1501 and prints the paper's numbers beside ours.
Finished runs in --runs are reused (only the scoring runs again); an interrupted run resumes
from its newest checkpoint. Run rows in parallel as separate processes, one per core, with
OMP_NUM_THREADS=1.
Usage: python benchmarks/iccv_table6.py --rows 64x32 128x64 [--runs DIR] [--json FILE]
       [--epochs N (a shortened schedule: labelled in the output and the zoo card)]
       [--zoo] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine, score
from zoo_entry import code_version, logged_run, write_zoo_entry

from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.tasks import fit_from_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_DATA = SHARED / "data" / "market1501"
IMAGENET = SHARED / "weights" / "osnet_x0_25_imagenet.pth"
# ICCV'19 Table 6, beta = 0.25: R1 / mAP on Market-1501 per input size
PAPER = {
    "256x128": (92.2, 77.8),
    "192x96": (91.6, 76.1),
    "128x64": (88.7, 71.8),
    "64x32": (79.1, 56.0),
}


def config_for(row: str, run: Path, args: argparse.Namespace):
    """The row's paper recipe with this machine's paths (and any --set / --epochs change)."""
    extra = [
        f"model.weights={args.weights}",
        f"data.root={args.root}",
        "data.workers=0",  # on 2 cores a loader process only competes with the model
        "data.cache_images=true",
        f"train.out_dir={run}",
        "train.keep=2",
        *args.set,
    ]
    if args.epochs is not None:  # the same decay points, scaled to the shorter schedule
        steps = [max(1, round(m * args.epochs / 150)) for m in (60, 120)]
        extra += [f"optim.max_epoch={args.epochs}", f"optim.milestones={steps}"]
    return load_config(ROOT / "configs" / "iccv" / f"table6_x0_25_{row}.yaml", extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", nargs="+", default=["64x32", "128x64"], choices=list(PAPER))
    parser.add_argument("--root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weights", type=Path, default=IMAGENET)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "iccv_table6")
    parser.add_argument("--epochs", type=int, default=None, help="shorten the 150-epoch recipe")
    parser.add_argument("--json", type=Path, default=None, help="write the rows measured here")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--zoo", action="store_true", help="register each row's model")
    parser.add_argument("--note", default="", help="a note for the zoo cards")
    args = parser.parse_args()
    if not args.root.is_dir() or not args.weights.is_file():
        print(f"skipped: needs {args.root} and {args.weights} (../shared)")
        return
    args.root, args.weights = args.root.resolve(), args.weights.resolve()
    print(f"machine: {machine()}")
    market = {"market1501": load_dataset("market1501", args.root)}
    rows = []
    for row in args.rows:
        run = args.runs / f"x0_25_{row}"
        config = config_for(row, run, args)
        started = time.perf_counter()
        records = fit_from_config(config)
        minutes = (time.perf_counter() - started) / 60
        if not records:  # a finished run reused: its time is the one its log recorded
            records, minutes = logged_run(run)
        measured = score(run, market, metric=config.test.metric)["market1501"]
        paper_r1, paper_map = PAPER[row]
        schedule = f"{config.optim.max_epoch} epochs" + (
            " (shortened)" if config.optim.max_epoch != 150 else ""
        )
        result = {
            "row": f"x0.25 {row}",
            "paper": {"rank1": paper_r1, "mAP": paper_map},
            "measured": {k: round(v, 2) for k, v in measured.items()},
            "schedule": schedule,
            # every evaluation the run logged (train.eval_every), so the curve has an artefact
            "evaluations": [
                {"epoch": r["epoch"], "rank1": round(r["rank1"], 2), "mAP": round(r["mAP"], 2)}
                for r in (logged_run(run)[0] if records else [])
                if "rank1" in r
            ],
            "training_minutes": round(minutes, 1),
            "code": code_version(),
            "machine": machine(),
        }
        rows.append(result)
        print(
            f"x0.25 {row} ({schedule}, {minutes:.0f} min): R1 {measured['rank1']:.2f} "
            f"mAP {measured['mAP']:.2f} | paper R1 {paper_r1} mAP {paper_map} | "
            f"gap R1 {measured['rank1'] - paper_r1:+.2f} mAP {measured['mAP'] - paper_map:+.2f}"
        )
        if args.zoo:
            write_zoo_entry(
                run,
                f"osnet_x0_25_market_iccv_{row}",
                f"OSNet x0.25 fine-tuned from ImageNet on Market-1501 at {row}, ICCV'19 Table 6's "
                f"recipe ({schedule})",
                config,
                records,
                minutes,
                {"market1501": measured},
                {"market1501": str(args.root)},
                note=args.note,
            )
    print("\n| Table 6 row | paper R1 / mAP | ours R1 / mAP | schedule |")
    print("|---|---|---|---|")
    for r in rows:
        p, m = r["paper"], r["measured"]
        print(
            f"| {r['row']} | {p['rank1']} / {p['mAP']} | {m['rank1']:.2f} / {m['mAP']:.2f} | "
            f"{r['schedule']} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
