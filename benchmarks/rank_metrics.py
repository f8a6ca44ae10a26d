"""CMC/mAP on a Market-1501-sized problem (3,368 x 15,913): ours vs torchreid's evaluate_rank.

Random distances and Market-like id/camera structure, seeded. The reference runs its Python
fallback (torchreid 0.2.5 from PyPI ships no compiled Cython evaluator). Prints both times,
the ratio and the largest metric difference. Usage: python benchmarks/rank_metrics.py
[--skip-reference]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import torch

from omnireid.evaluation.metrics import evaluate_rank


def market_like_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    n, m = 3368, 15913
    g_pids = rng.integers(0, 751, m)
    q_pids = rng.choice(np.unique(g_pids), n)
    distmat = rng.random((n, m), dtype=np.float32)
    # Make true matches closer on average so the metrics are not trivial.
    distmat -= 0.5 * (g_pids[None, :] == q_pids[:, None]) * rng.random((n, m), dtype=np.float32)
    return distmat, q_pids, g_pids, rng.integers(0, 6, n), rng.integers(0, 6, m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
        f"numpy {np.__version__}"
    )
    problem = market_like_problem()
    evaluate_rank(*[p[:64] if i in (0, 1, 3) else p for i, p in enumerate(problem)])  # warm-up
    start = time.perf_counter()
    ours = evaluate_rank(*problem)
    ours_s = time.perf_counter() - start
    print(f"ours:      {ours_s:6.2f} s  R1 {100 * ours.cmc[0]:.2f}  mAP {100 * ours.mAP:.2f}")
    if args.skip_reference:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.metrics.rank import evaluate_rank as reference
    start = time.perf_counter()
    cmc, mAP = reference(*problem, use_cython=False)
    ref_s = time.perf_counter() - start
    print(f"reference: {ref_s:6.2f} s  R1 {100 * cmc[0]:.2f}  mAP {100 * mAP:.2f}")
    diff = max(np.abs(cmc - ours.cmc).max(), abs(mAP - ours.mAP))
    print(f"speed-up: {ref_s / ours_s:.1f}x; largest metric difference {diff:.1e}")


if __name__ == "__main__":
    main()
