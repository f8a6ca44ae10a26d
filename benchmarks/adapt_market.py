"""A new site without labels: the MSMT17 OSNet x0.25 adapted to Market-1501 (omnireid adapt).

The source is the reference MSMT17 checkpoint (../shared/weights/osnet_x0_25_msmt17.pth). The
target site is Market-1501: its ``bounding_box_train`` images are the unlabelled target images
(the method never reads their identities; they are read only to report pseudo-label purity),
its query/gallery the test. Reported, each with its time:

1. direct transfer: the source model as it is (Euclidean distance, the reference protocol,
   and cosine, the distance the adapted models are tested with);
2. AdaBN only: BatchNorm statistics re-estimated on the target images, no training;
3. the full method (``omnireid adapt``: AdaBN, then per round k-reciprocal Jaccard distance ->
   DBSCAN -> cluster memory + InfoNCE over P x K batches of pseudo-identities) within each
   ``--minutes`` budget, with a curve: every ``--curve-every``-th round's checkpoint tested
   afterwards (tests are not part of the budget).

The budget counts ``--clock cpu`` (default: the process's CPU time; with ``--threads 1`` that
is core-minutes, half of what the 2-core machine gives in the same wall time, and unaffected
by other jobs) or ``wall``. Input 256x128, the source's own size: the test protocol of the
direct-transfer baseline; a 128x64 run would trade accuracy of the start for more rounds.

Usage: python benchmarks/adapt_market.py [--minutes 60 120] [--clock cpu] [--threads 1]
       [--out runs/adapt_market] [--json FILE] [--curve-every 2] [--set adapt.eps=0.5 ...]
Finished runs in --out are reused (only their tests run again); prints the table and writes
OUT/adapt_market.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import machine, score
from zoo_entry import write_zoo_entry

from omnireid.cli import main as omnireid
from omnireid.config import load_config
from omnireid.data.datasets import load_dataset
from omnireid.engine.callbacks import read_jsonl
from omnireid.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SOURCE = SHARED / "weights" / "osnet_x0_25_msmt17.pth"
MARKET = SHARED / "data" / "market1501"


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, {
        "wall_min": (time.perf_counter() - wall) / 60,
        "cpu_min": (time.process_time() - cpu) / 60,
    }


def adapt(args: argparse.Namespace, out: Path, extra: list[str]) -> dict:
    """Run (or resume, or reuse) one ``omnireid adapt`` and return its time."""
    command = [
        "adapt",
        "--weights", str(args.source),
        "--dataset", "market1501",
        "--root", str(args.root),
        "--out", str(out),
        "--eval-every", "0",
        "data.cache_images=true",  # Market's 12,936 train images decoded once: 318 MB
        *extra,
    ]  # fmt: skip
    log = RunDir(out).log
    resumed = len(read_jsonl(log)) if log.is_file() else 0
    code, took = timed(omnireid, command)
    if code:
        raise SystemExit(f"omnireid adapt failed ({code}): {' '.join(command)}")
    if resumed:  # the time of this process only; the budget itself carries over a resume
        took["resumed_after_round"] = resumed
    return took


def curve(run: Path, every: int, market: dict) -> list[dict]:
    """Every ``every``-th round's checkpoint (and the last) tested on Market-1501, with the
    round's clustering statistics and the budget spent by its end (kept in RUN/curve.json:
    a rerun tests only rounds not tested yet)."""
    log = read_jsonl(RunDir(run).log)
    cache = run / "curve.json"
    tested = {p["round"]: p for p in json.loads(cache.read_text())} if cache.is_file() else {}
    points = []
    for record in log:
        epoch = record["epoch"]
        if epoch % every and epoch != len(log):
            continue
        if epoch in tested:
            points.append(tested[epoch])
            continue
        metrics = score(run / f"epoch-{epoch:04d}", market)["market1501"]
        kept = ("clusters", "outliers", "purity", "ids_found", "budget_used", "acc")
        points.append({"round": epoch, **{k: record[k] for k in kept if k in record}, **metrics})
        print(
            f"  round {epoch}: clusters {record.get('clusters', 0):.0f} "
            f"purity {record.get('purity', float('nan')):.1f} R1 {metrics['rank1']:.2f} "
            f"mAP {metrics['mAP']:.2f}",
            flush=True,
        )
        cache.write_text(json.dumps(points, indent=2))
    return points


LICENCE = (
    "Adapted from a model trained on MSMT17 (Wei et al., CVPR 2018) to the unlabelled train images "
    "of Market-1501 (Zheng et al., ICCV 2015); both allow research use only: these weights are "
    "for research use only."
)


def to_zoo(args: argparse.Namespace, run: Path, minutes: float, final: dict, scores: dict) -> None:
    """The adapted model of one budget into omnireid/zoo with its card."""
    config = load_config(str(run / "config.json"))
    name = f"osnet_x0_25_msmt17_adapted_market_cpu{minutes:g}"
    summary = (
        f"the reference MSMT17 OSNet x0.25 adapted to Market-1501 without labels by omnireid "
        f"adapt (AdaBN + clustering self-training), {minutes:g} {args.clock} minutes, 256x128"
    )
    log = read_jsonl(RunDir(run).log)
    took = json.loads((run / "timing.json").read_text())
    # a resumed run's process time misses the rounds before the resume; its budget does not
    spent = log[-1]["budget_used"] * minutes if "resumed_after_round" in took else took["wall_min"]
    metrics = {"market1501": {k: scores[k] for k in ("rank1", "rank5", "mAP")}}
    write_zoo_entry(run, name, summary, config, log, spent, metrics,
                    {"market1501": str(args.root)},
                    trained_on="MSMT17 (labelled, by the reference) + Market-1501 train "
                    "images (unlabelled)", licence=LICENCE, note=args.note)  # fmt: skip


BASELINES = ("direct_euclidean", "direct_cosine", "adabn")


def measure_baselines(args: argparse.Namespace, market: dict) -> dict:
    """Direct transfer (Euclidean and cosine) and AdaBN only, each with its time."""
    out = {}
    for metric in ("euclidean", "cosine"):
        direct, took = timed(score, args.source, market, metric)
        out[f"direct_{metric}"] = {**direct["market1501"], **took}
    print(f"direct transfer: {out['direct_euclidean']} / cosine {out['direct_cosine']}")
    adabn = args.out / "adabn"
    took = adapt(args, adabn, ["--adabn-only", "train.resume=false", *args.set])
    tested = json.loads((adabn / "metrics.json").read_text())  # its time includes this test
    out["adabn"] = {k: tested[k] for k in ("rank1", "rank5", "mAP")} | took
    print(f"AdaBN only: {out['adabn']}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--root", type=Path, default=MARKET)
    parser.add_argument("--minutes", type=float, nargs="+", default=[60, 120])
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "adapt_market")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--curve-every", type=int, default=5)
    parser.add_argument(
        "--runs-only", action="store_true", help="skip the baselines (e.g. a second process)"
    )
    parser.add_argument("--set", nargs="*", default=[], help="more settings, e.g. adapt.eps=0.5")
    parser.add_argument("--note", default="", help="a note for the zoo cards")
    parser.add_argument("--zoo", action="store_true", help="put every adapted model in the zoo")
    args = parser.parse_args()
    if not args.source.is_file() or not args.root.is_dir():
        print(f"skipped: needs {args.source} and {args.root} (../shared)")
        return
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    market = {"market1501": load_dataset("market1501", args.root)}
    result: dict = {"machine": machine(), "source": str(args.source), "settings": args.set}

    baselines = args.out / "baselines.json"
    if baselines.is_file():
        result.update(json.loads(baselines.read_text()))
    elif not args.runs_only:
        result.update(measure_baselines(args, market))
        baselines.write_text(json.dumps({k: result[k] for k in BASELINES}, indent=2))

    for minutes in args.minutes:
        run = args.out / f"budget{minutes:g}"
        extra = [
            "--minutes", f"{minutes:g}",
            "train.keep=0",
            f"train.budget_clock={args.clock}",
            "train.budget_reserve_minutes=0.05",
            *args.set,
        ]  # fmt: skip
        timing = run / "timing.json"  # a finished run is reused with the time it took
        if timing.is_file() and (run / "metrics.json").is_file():
            took = json.loads(timing.read_text())
        else:
            took = adapt(args, run, extra)
            timing.write_text(json.dumps(took))
        final = json.loads((run / "metrics.json").read_text())
        print(f"budget {minutes:g} {args.clock} minutes: {took}", flush=True)
        points = curve(run, args.curve_every, market)
        if args.zoo:
            to_zoo(args, run, minutes, final, points[-1])
        result[f"budget{minutes:g}"] = {
            **points[-1],
            **took,
            "rounds": final["epoch"],
            "clock": args.clock,
            "curve": points,
        }

    print("\n| Market-1501 test | R1 | R5 | mAP | time |")
    print("|---|---|---|---|---|")
    rows = [("direct transfer (Euclidean)", "direct_euclidean"),
            ("direct transfer (cosine)", "direct_cosine"), ("AdaBN only", "adabn")]  # fmt: skip
    rows += [(f"adapted, {m:g} {args.clock} minutes", f"budget{m:g}") for m in args.minutes]
    for label, key in rows:
        if key not in result:
            continue
        r = result[key]
        took = f"{r['wall_min']:.1f} wall / {r['cpu_min']:.1f} CPU min"
        if "resumed_after_round" in r:  # this process's time covers only the rounds after it
            used = r["budget_used"] * float(key.removeprefix("budget"))
            took = f"{used:.1f} {r['clock']} min of the budget (resumed after round "
            took += f"{r['resumed_after_round']})"
        rounds = f", {r['rounds']} rounds" if "rounds" in r else ""
        scores = f"{r['rank1']:.2f} | {r['rank5']:.2f} | {r['mAP']:.2f}"
        print(f"| {label} | {scores} | {took}{rounds} |")
    path = args.json or args.out / "adapt_market.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
