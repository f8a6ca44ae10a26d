"""Full Market-1501 evaluation of the OSNet x0.25 checkpoint: ours vs the reference pipeline.

Both run in this one invocation, each in a fresh subprocess, on the same images:
- ours: ``omnireid evaluate`` (parse, decode, BN-folded fast model, chunked distances,
  sparse parallel ranking);
- reference: torchreid 0.2.5's ``FeatureExtractor`` (fed 128 paths at a time, as its docs use
  it with lists of paths) + ``compute_distance_matrix`` + ``evaluate_rank``.
Prints both wall times, the ratio, and both sets of metrics. Needs ../shared and the
``reference`` extra. Usage: python benchmarks/eval_market.py [--skip-reference]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data" / "market1501"
WEIGHTS = SHARED / "weights" / "osnet_x0_25_market1501.pt"


def run_reference(out: str) -> None:
    """The classic pipeline, timed from dataset listing to metrics (runs in a subprocess)."""
    import warnings

    warnings.simplefilter("ignore")
    import numpy as np
    import torch
    from torchreid.reid.metrics import compute_distance_matrix, evaluate_rank
    from torchreid.reid.utils import FeatureExtractor

    from omnireid.data.datasets import load_dataset

    start = time.perf_counter()
    dataset = load_dataset("market1501", DATA)
    extractor = FeatureExtractor(
        "osnet_x0_25", model_path=str(WEIGHTS), device="cpu", verbose=False
    )

    def features(samples):
        chunks = [
            extractor([s.path for s in samples[i : i + 128]]) for i in range(0, len(samples), 128)
        ]
        return torch.cat(chunks)

    qf, gf = features(dataset.query), features(dataset.gallery)
    distmat = compute_distance_matrix(qf, gf, "euclidean").numpy()
    ids = {
        k: np.array([getattr(s, f) for s in getattr(dataset, split)])
        for k, (split, f) in {
            "qp": ("query", "pid"),
            "gp": ("gallery", "pid"),
            "qc": ("query", "camid"),
            "gc": ("gallery", "camid"),
        }.items()
    }
    cmc, mAP = evaluate_rank(distmat, ids["qp"], ids["gp"], ids["qc"], ids["gc"])
    seconds = time.perf_counter() - start
    metrics = {
        "rank1": 100 * cmc[0],
        "rank5": 100 * cmc[4],
        "rank10": 100 * cmc[9],
        "mAP": 100 * mAP,
    }
    Path(out).write_text(
        json.dumps({"seconds": seconds, **{k: float(v) for k, v in metrics.items()}})
    )


def run_ours(out: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "omnireid",
            "evaluate",
            "--arch",
            "osnet_x0_25",
            "--weights",
            str(WEIGHTS),
            "--dataset",
            "market1501",
            "--root",
            str(DATA),
            "--json",
            out,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-reference", action="store_true", help="time ours only")
    parser.add_argument("--reference-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        run_reference(args.reference_worker)
        return 0
    if not DATA.is_dir() or not WEIGHTS.is_file():
        print(f"skipped: needs {DATA} and {WEIGHTS} (../shared beside the checkout)")
        return 0
    import torch

    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    with tempfile.TemporaryDirectory() as tmp:
        ours_json = os.path.join(tmp, "ours.json")
        ours_s = run_ours(ours_json)
        ours = json.loads(Path(ours_json).read_text())
        print(
            f"ours:      {ours_s:7.1f} s  R1 {ours['rank1']:.2f}  R5 {ours['rank5']:.2f}  "
            f"R10 {ours['rank10']:.2f}  mAP {ours['mAP']:.2f}  mINP {ours['mINP']:.2f}"
        )
        if args.skip_reference:
            return 0
        ref_json = os.path.join(tmp, "ref.json")
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--reference-worker", ref_json], check=True)
        ref_s = time.perf_counter() - start
        ref = json.loads(Path(ref_json).read_text())
        print(
            f"reference: {ref_s:7.1f} s  R1 {ref['rank1']:.2f}  R5 {ref['rank5']:.2f}  "
            f"R10 {ref['rank10']:.2f}  mAP {ref['mAP']:.2f}"
        )
        same = all(abs(ours[k] - ref[k]) < 0.005 for k in ("rank1", "rank5", "rank10", "mAP"))
        print(
            f"speed-up: {ref_s / ours_s:.2f}x (wall time, process start to metrics); "
            f"metrics {'identical to 0.01' if same else 'DIFFER'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
