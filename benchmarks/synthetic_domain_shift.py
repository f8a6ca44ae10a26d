"""Instance normalisation under camera-style shift, on the built-in synthetic world.

Each camera of ``omnireid.data.synthetic`` has its own style (background and texture,
per-channel lighting gain, blur, noise, person scale). The script trains OSNet x0.25 with
and without AIN (``osnet_x0_25`` vs ``osnet_ain_x0_25``, TPAMI'21) from scratch on the train
images of the *source* cameras only (default 1-3), then tests each model on the query/gallery
of the *target* cameras (default 4-6, styles never seen in training: the cross-domain result)
and of the source cameras (the same-domain reference). Test identities are unseen in both.
Both models get the same recipe (the TPAMI cross-domain one, from scratch): AMSGrad, cosine
schedule, flip + colour jitter, no random erasing, the same seed and epochs.

The split is written as two custom-dataset CSVs (``split,path,pid,camid``, absolute paths):
``source.csv`` (train + source query/gallery) and ``target.csv`` (the same train rows, which
the loader requires but nothing trains on, + target query/gallery). Training runs through the
config edge with ``data.target=custom``, so the run itself evaluates on the target at the
end; the last checkpoint is then evaluated on the source test set by the same evaluator.

Usage:
    python benchmarks/synthetic_domain_shift.py [--epochs 8] [--seed 0] [--height 128]
        [--width 64] [--source-cams 1,2,3] [--target-cams 4,5,6] [--out runs/domain_shift]
    python benchmarks/synthetic_domain_shift.py --quick    # tiny world, 1 epoch: smoke test

Prints model | source R1/mAP | target R1/mAP | train time and the machine; writes
``OUT/domain_shift.json``. Default world: 130 train ids x 5 images per source camera (1,950
train images), 50 test ids, 6 cameras: about 3-4 minutes of training per model on an idle
2-core CPU at 128x64. One seed on a small synthetic world is one sample, not a
significance test: report the numbers honestly whatever they are, including when AIN does not
help or the gap between source and target is small.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path
from typing import Any

from common import machine

from omnireid.config import load_config
from omnireid.data.datasets import ReIDDataset, load_dataset
from omnireid.data.synthetic import MAX_CAMS, generate_world
from omnireid.models import load_for_inference
from omnireid.tasks import fit_from_config
from omnireid.tasks.reid import make_evaluator

ARCHS = ("osnet_x0_25", "osnet_ain_x0_25")
WORLD = {"num_ids_train": 130, "num_ids_test": 50, "images_per_id_per_cam": 5}
QUICK_WORLD = {"num_ids_train": 8, "num_ids_test": 4, "images_per_id_per_cam": 2}


def parse_cams(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)``: 1-based camera numbers of the synthetic world."""
    try:
        cams = tuple(sorted({int(c) for c in text.split(",") if c.strip()}))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err
    if len(cams) < 2 or not all(1 <= c <= MAX_CAMS for c in cams):
        raise argparse.ArgumentTypeError(
            f"expected at least 2 cameras in 1..{MAX_CAMS} (a query needs a gallery match from "
            f"another camera), got {text!r}"
        )
    return cams


def write_split_csvs(
    world: ReIDDataset, source: tuple[int, ...], target: tuple[int, ...], out: Path
) -> tuple[Path, Path]:
    """``out/source.csv`` and ``out/target.csv`` from a world parsed as Market-1501.

    Train rows (source cameras only) go into both; query/gallery rows are split by camera.
    Cameras are written 1-based, as in the world's file names (``Sample.camid`` is 0-based).
    """
    header = ["split", "path", "pid", "camid"]
    train = [s for s in world.train if s.camid + 1 in source]
    paths = {}
    for name, cams in (("source", source), ("target", target)):
        rows = [("train", s) for s in train]
        rows += [
            (split, s)
            for split in ("query", "gallery")
            for s in getattr(world, split)
            if s.camid + 1 in cams
        ]
        paths[name] = out / f"{name}.csv"
        with open(paths[name], "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(
                [split, str(Path(s.path).resolve()), s.pid, s.camid + 1] for split, s in rows
            )
    return paths["source"], paths["target"]


def recipe(
    arch: str, source_csv: Path, target_csv: Path, run_dir: Path, args: argparse.Namespace
) -> list[str]:
    """Config overrides: the TPAMI cross-domain recipe from scratch, as in ``omnireid demo``."""
    return [
        f"model.arch={arch}",
        "data.dataset=custom",
        f"data.root={source_csv}",
        "data.target=custom",
        f"data.target_root={target_csv}",
        f"data.height={args.height}",
        f"data.width={args.width}",
        f"data.batch_size={args.batch_size}",
        f"data.workers={args.workers}",
        "data.flip=true",
        "data.color_jitter=true",
        "data.random_erasing=false",
        "optim.name=amsgrad",
        f"optim.lr={args.lr}",
        "optim.schedule=cosine",
        f"optim.max_epoch={args.epochs}",
        f"train.seed={args.seed}",
        f"train.out_dir={run_dir}",
        "train.resume=false",
        "train.keep=1",
        f"train.eval_every={args.epochs}",
    ]


def run_model(
    arch: str, source_csv: Path, target_csv: Path, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Train ``arch`` on the source train split; metrics on the target and source test sets."""
    run_dir = out / "runs" / arch
    if run_dir.exists():  # a fresh run each time: no resume, no appended logs
        shutil.rmtree(run_dir)
    config = load_config(None, recipe(arch, source_csv, target_csv, run_dir, args))
    started = time.perf_counter()
    records = fit_from_config(config)  # ends with the evaluation on the target
    wall = time.perf_counter() - started
    source = load_dataset("custom", source_csv)
    model, _ = load_for_inference(run_dir)
    source_metrics = make_evaluator(config, source)(model)
    return {
        "source": source_metrics,
        "target": {k: records[-1][k] for k in source_metrics},
        "train_seconds": sum(r["seconds"] for r in records),
        "wall_seconds_with_target_eval": wall,
        "final_train_loss": records[-1]["loss"],
        "final_train_acc": records[-1]["acc"],
    }


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print(
        "\n| model | source R1 / mAP | target R1 / mAP | R1 drop (source - target) | train time |"
    )
    print("|---|---|---|---|---|")
    for arch, r in results.items():
        s, t = r["source"], r["target"]
        print(
            f"| {arch} | {s['rank1']:.1f} / {s['mAP']:.1f} | {t['rank1']:.1f} / {t['mAP']:.1f} "
            f"| {s['rank1'] - t['rank1']:.1f} | {r['train_seconds']:.1f} s |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--epochs", type=int, default=None, help="default 8 (1 with --quick)")
    p.add_argument("--seed", type=int, default=0, help="training seed (same for both models)")
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--height", type=int, default=None, help="default 128 (64 with --quick)")
    p.add_argument("--width", type=int, default=None, help="default 64 (32 with --quick)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--source-cams", type=parse_cams, default=(1, 2, 3))
    p.add_argument("--target-cams", type=parse_cams, default=(4, 5, 6))
    p.add_argument("--out", type=Path, default=Path("runs/domain_shift"))
    p.add_argument("--quick", action="store_true", help="tiny world, 1 epoch, 64x32")
    args = p.parse_args()
    args.epochs = args.epochs or (1 if args.quick else 8)
    args.height = args.height or (64 if args.quick else 128)
    args.width = args.width or (32 if args.quick else 64)
    if set(args.source_cams) & set(args.target_cams):
        p.error(f"source {args.source_cams} and target {args.target_cams} cameras must differ")

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    sizes = QUICK_WORLD if args.quick else WORLD
    num_cams = max(args.source_cams + args.target_cams)
    world_options = {**sizes, "num_cams": num_cams, "num_distractors": 2 * num_cams}
    started = time.perf_counter()
    world_dir = generate_world(
        out / ("world_quick" if args.quick else "world"), **world_options, seed=args.world_seed
    )
    print(f"world: {world_dir} ({time.perf_counter() - started:.1f} s), {world_options}")
    source_csv, target_csv = write_split_csvs(
        load_dataset("market1501", world_dir), args.source_cams, args.target_cams, out
    )
    results = {arch: run_model(arch, source_csv, target_csv, out, args) for arch in ARCHS}

    print_table(results)
    print(
        f"\nsource cameras {args.source_cams}, target cameras {args.target_cams}; "
        f"{args.epochs} epochs at {args.height}x{args.width}, seed {args.seed}"
    )
    print(f"machine: {machine()}")
    report = {
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "world": {**world_options, "seed": args.world_seed, "path": str(world_dir)},
        "results": results,
    }
    (out / "domain_shift.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'domain_shift.json'}")


if __name__ == "__main__":
    main()
