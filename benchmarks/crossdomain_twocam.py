"""TPAMI'21's claim at x0.25: does OSNet-AIN (or -IBN) generalise better to unseen cameras than
OSNet?

Trains each architecture on Market-1501 and tests it, with the paper's cosine distance, on
Market-1501 itself and on ../shared/data/twocam/crosscam.csv: a real 2-camera street set of 74
people none of the training data contains (camera-1 images as queries, camera-2 as gallery).

Two starts (``--init``):
- ``imagenet``: the TPAMI cross-domain setting as the paper ran it (Sec. 4.2), at width x0.25
  and 128x64: fine-tuned from ../shared/weights/osnet_x0_25_imagenet.pth (the reference's
  ImageNet OSNet x0.25; the IBN/AIN variants start from it by a partial load: their new
  instance norms start fresh, docs/models.md), AMSGrad lr 0.0015, batch 64, cosine decay over
  100 epochs, the base frozen for the first 10, random flip + colour jitter (no erasing),
  label-smoothed CE.
- ``scratch``: the earlier miniature (random init, AMSGrad lr 0.003, cosine with 1 warm-up
  epoch, the same augmentation, 100 epochs).

Architectures (``--archs``): osnet_x0_25, osnet_ibn_x0_25, osnet_ain_x0_25 and
ain_bnstem_x0_25 (a control: OSNet-AIN's blocks with OSNet's BatchNorm stem, built as
osnet_x0_25 with those block_norms). One run per architecture and seed; finished runs are
reused (only the scoring runs again), interrupted ones resume. Prints each run, the mean and
spread per architecture, and a paired bootstrap interval over twocam queries for every variant
minus OSNet (per-query AP and R1, averaged over the seeds both have); writes it all as JSON.
Usage: python benchmarks/crossdomain_twocam.py --init imagenet [--archs A ...] [--seeds 0 1 2]
       [--runs DIR] [--json FILE] [--zoo] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from common import machine
from train_market_cpu import DEFAULT_DATA, overrides
from zoo_entry import code_version, logged_run, write_zoo_entry

from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.evaluation.evaluate import evaluate_model
from omnireid.evaluation.features import Embedder
from omnireid.evaluation.metrics import query_scores
from omnireid.evaluation.significance import paired_bootstrap
from omnireid.models import load_for_inference
from omnireid.models.fused import optimize_for_inference
from omnireid.models.osnet import AIN_BLOCKS
from omnireid.tasks import fit_from_config

ROOT = Path(__file__).resolve().parents[1]
TWOCAM = ROOT.parent / "shared" / "data" / "twocam" / "crosscam.csv"
IMAGENET = ROOT.parent / "shared" / "weights" / "osnet_x0_25_imagenet.pth"
# name -> (registry arch, builder options)
VARIANTS: dict[str, tuple[str, dict]] = {
    "osnet_x0_25": ("osnet_x0_25", {}),
    "osnet_ibn_x0_25": ("osnet_ibn_x0_25", {}),
    "osnet_ain_x0_25": ("osnet_ain_x0_25", {}),
    "ain_bnstem_x0_25": (
        "osnet_x0_25",
        {"block_norms": [list(s) for s in AIN_BLOCKS], "stem_norm": "bn"},
    ),
}
BASELINE = "osnet_x0_25"
AUGMENT = ["data.random_crop=false", "data.random_erasing=false", "data.color_jitter=true"]
RECIPES = {
    "scratch": [*AUGMENT, "test.metric=cosine"],
    "imagenet": [
        *AUGMENT,
        "optim.lr=0.0015",
        "optim.warmup_epochs=0",
        "optim.fixbase_epochs=10",
        "test.metric=cosine",
    ],
}


def run_config(args: argparse.Namespace, variant: str, seed: int, run: Path):
    arch, options = VARIANTS[variant]
    extra = [*RECIPES[args.init], f"model.arch={arch}", f"train.seed={seed}"]
    extra.append(f"optim.max_epoch={args.epochs}")
    if options:
        extra.append(f"model.options={json.dumps(options)}")
    if args.init == "imagenet":
        extra.append(f"model.weights={args.weights}")
    return load_config(None, overrides(args.root, run, extra))


def score_run(run: Path, datasets: dict) -> tuple[dict, dict]:
    """Market and twocam metrics (cosine), and twocam's per-query AP and R1 for the bootstrap."""
    model, pre = load_for_inference(run)
    fast = optimize_for_inference(model)
    metrics, per_query = {}, {}
    for name, dataset in datasets.items():
        ev = evaluate_model(Embedder.of_model(fast, pre), dataset, metric="cosine", progress=False)
        metrics[name] = {k: round(v, 2) for k, v in ev.result.as_dict().items()}
        if name == "twocam":
            q, g = ev.query, ev.gallery
            scores = query_scores(ev.distmat, q.pids, g.pids, q.camids, g.camids)
            per_query = {
                "ap": (100 * scores.ap).tolist(),
                "r1": (100.0 * (scores.first_rank == 1)).tolist(),
            }
    return metrics, per_query


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}"


def report(results: list[dict], per_query: dict) -> dict:
    """The per-architecture table (mean ± sample std over seeds) and the bootstrap intervals."""
    print("\n| model | seeds | Market-1501 R1 / mAP | twocam R1 | twocam R5 | twocam mAP |")
    print("|---|---|---|---|---|---|")
    summary: dict = {"archs": {}, "bootstrap": {}}
    for variant in VARIANTS:
        rows = [r for r in results if r["arch"] == variant]
        if not rows:
            continue

        def col(data: str, key: str, rows: list = rows) -> list[float]:
            return [r[data][key] for r in rows]

        summary["archs"][variant] = {
            "seeds": [r["seed"] for r in rows],
            **{
                f"{d}_{k}": spread(col(d, k))
                for d in ("market1501", "twocam")
                for k in ("rank1", "rank5", "mAP")
            },
        }
        print(
            f"| {variant} | {len(rows)} | {spread(col('market1501', 'rank1'))} / "
            f"{spread(col('market1501', 'mAP'))} | {spread(col('twocam', 'rank1'))} | "
            f"{spread(col('twocam', 'rank5'))} | {spread(col('twocam', 'mAP'))} |"
        )
    base_seeds = {r["seed"] for r in results if r["arch"] == BASELINE}
    for variant in VARIANTS:
        seeds = sorted(base_seeds & {r["seed"] for r in results if r["arch"] == variant})
        if variant == BASELINE or not seeds:
            continue
        entry = {"seeds": seeds}
        for key in ("ap", "r1"):
            mine = np.mean([per_query[(variant, s)][key] for s in seeds], axis=0)
            base = np.mean([per_query[(BASELINE, s)][key] for s in seeds], axis=0)
            interval = paired_bootstrap(mine, base)
            entry[key] = {"mean": interval.mean, "low": interval.low, "high": interval.high}
            print(
                f"twocam {key.upper()} {variant} - {BASELINE} (seeds {seeds}, per query, "
                f"10,000 resamples): {interval}"
            )
        summary["bootstrap"][variant] = entry
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--init", choices=sorted(RECIPES), default="scratch")
    parser.add_argument("--archs", nargs="+", choices=list(VARIANTS), default=list(VARIANTS)[::2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--twocam", type=Path, default=TWOCAM)
    parser.add_argument("--weights", type=Path, default=IMAGENET, help="with --init imagenet")
    parser.add_argument("--runs", type=Path, default=None, help="default runs/twocam[_imagenet]")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--zoo", action="store_true", help="put seed 0 of each arch in the zoo")
    parser.add_argument("--note", default="", help="a note for the zoo cards")
    parser.add_argument(
        "--report-only", action="store_true", help="score finished runs only; train nothing"
    )
    args = parser.parse_args()
    if not args.root.is_dir() or not args.twocam.is_file():
        print(f"skipped: needs {args.root} and {args.twocam} (../shared)")
        return
    if args.init == "imagenet" and not args.weights.is_file():
        print(f"skipped: needs the ImageNet weights {args.weights} (../shared)")
        return
    args.root, args.weights = args.root.resolve(), args.weights.resolve()
    runs = args.runs or ROOT / "runs" / ("twocam" if args.init == "scratch" else "twocam_imagenet")
    print(f"machine: {machine()}")
    datasets = {
        "market1501": load_dataset("market1501", args.root),
        "twocam": load_dataset("custom", args.twocam),
    }
    results, per_query = [], {}
    for seed in args.seeds:
        for variant in args.archs:
            run = runs / f"{variant}_s{seed}"
            config = run_config(args, variant, seed, run)
            if args.report_only:
                if not (run / "metrics.json").is_file():
                    print(f"{variant} seed {seed}: not finished in {run}, left out")
                    continue
                records: list = []
            else:
                started = time.perf_counter()
                records = fit_from_config(config)
                minutes = (time.perf_counter() - started) / 60
            trained = f"{len(records)} epochs in {minutes:.0f} min" if records else "reused"
            metrics, per_query[(variant, seed)] = score_run(run, datasets)
            results.append({"arch": variant, "seed": seed, **metrics})
            if args.zoo and seed == args.seeds[0]:
                if not records:  # reused: the time is the one its log recorded
                    records, minutes = logged_run(run)
                start = "fine-tuned from ImageNet" if args.init == "imagenet" else "from scratch"
                summary = (
                    f"{variant} {start} on Market-1501 with the TPAMI cross-domain recipe at "
                    "128x64 (flip + colour jitter, cosine)"
                )
                suffix = "tpami_imagenet_cpu" if args.init == "imagenet" else "tpami_cpu"
                roots = {"market1501": str(args.root), "twocam": str(args.twocam)}
                write_zoo_entry(
                    run,
                    f"{variant}_market_{suffix}_s{seed}",
                    summary,
                    config,
                    records,
                    minutes,
                    {d: {k: m[k] for k in ("rank1", "rank5", "mAP")} for d, m in metrics.items()},
                    roots,
                    note=args.note,
                )
            m, t = metrics["market1501"], metrics["twocam"]
            print(
                f"{variant} seed {seed} ({trained}): Market R1 {m['rank1']:.2f} mAP "
                f"{m['mAP']:.2f} | twocam R1 {t['rank1']:.2f} R5 {t['rank5']:.2f} "
                f"mAP {t['mAP']:.2f}"
            )
    if not results:
        print("no finished runs")
        return
    summary = report(results, per_query)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {
            "init": args.init,
            "epochs": args.epochs,
            "machine": machine(),
            "code": code_version(),
            "runs": results,
            **summary,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
