"""Deployment path end to end on Market-1501: images -> FeatureExtractor -> GalleryIndex -> top-k.

R1/mAP are computed from the index's ranked lists (every gallery image retrieved; the standard
protocol's same-id-same-camera removal via ``evaluate_rank``) and compared with
``evaluate_model`` run on the same images in the same process (normalised features, Euclidean
distance: the same ranking as the index's inner product). They must agree; the script exits 1
if they differ by more than ``--tolerance`` points.

Usage: nice -n 19 python benchmarks/end_to_end_market.py [--root ../shared/data/market1501]
[--weights ../shared/weights/osnet_x0_25_market1501.pt] [--limit 50] [--kind flat]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from omnireid.data.datasets import load_dataset
from omnireid.data.datasets.base import ReIDDataset
from omnireid.data.images import parse_market_name
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.index import GalleryIndex
from omnireid.evaluation.evaluate import evaluate_model
from omnireid.evaluation.features import Embedder
from omnireid.evaluation.metrics import evaluate_rank
from omnireid.models import load_for_inference

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def subset(dataset: ReIDDataset, limit: int) -> ReIDDataset:
    """The first ``limit`` queries; the gallery images of their ids plus ``5 * limit`` others."""
    query = dataset.query[:limit]
    pids = {s.pid for s in query}
    own = [s for s in dataset.gallery if s.pid in pids]
    others = [s for s in dataset.gallery if s.pid not in pids][: 5 * limit]
    return ReIDDataset(dataset.name, [], query, own + others)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(SHARED / "data" / "market1501"))
    parser.add_argument("--weights", default=str(SHARED / "weights" / "osnet_x0_25_market1501.pt"))
    parser.add_argument("--arch", default="osnet_x0_25")
    parser.add_argument("--limit", type=int, default=None, help="first N queries (a subset)")
    parser.add_argument("--kind", choices=("flat", "ivf", "hnsw"), default="flat")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=0.01, help="points of R1/mAP")
    args = parser.parse_args()
    for path in (args.root, args.weights):
        if not Path(path).exists():
            print(f"skipped: {path} not found (../shared is not beside this checkout)")
            return 0
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    dataset = load_dataset("market1501", args.root)
    if args.limit:
        dataset = subset(dataset, args.limit)
    print(f"{len(dataset.query)} queries, {len(dataset.gallery)} gallery images")

    start = time.perf_counter()
    extractor = FeatureExtractor(args.weights, arch=args.arch, batch_size=args.batch_size)
    g_paths = [s.path for s in dataset.gallery]
    q_paths = [s.path for s in dataset.query]
    g_meta = np.array([parse_market_name(p) for p in g_paths])
    q_meta = np.array([parse_market_name(p) for p in q_paths])
    index = GalleryIndex.build(
        extractor.extract_paths(g_paths),
        g_paths,
        pids=g_meta[:, 0],
        camids=g_meta[:, 1],
        kind=args.kind,
        spec=extractor.spec,
    )
    result = index.search(extractor.extract_paths(q_paths), k=len(index))
    # ranked lists -> a distance matrix whose argsort is the index's order
    distmat = np.full((len(q_paths), len(index)), np.inf, np.float32)
    rows = np.repeat(np.arange(len(q_paths)), result.indices.shape[1])
    valid = result.indices.ravel() >= 0
    distmat[rows[valid], result.indices.ravel()[valid]] = -result.scores.ravel()[valid]
    ours = evaluate_rank(distmat, q_meta[:, 0], g_meta[:, 0], q_meta[:, 1], g_meta[:, 1])
    index_s = time.perf_counter() - start

    start = time.perf_counter()
    model, _ = load_for_inference(args.weights, args.arch)
    reference = evaluate_model(
        Embedder.of_model(model, extractor.preprocessing),
        dataset,
        normalize=True,
        batch_size=args.batch_size,
    ).result
    eval_s = time.perf_counter() - start

    a, b = ours.as_dict(), reference.as_dict()
    print(f"{'':<28}{'R1':>7}{'R5':>7}{'mAP':>7}{'time s':>9}")
    print(
        f"{'index (' + args.kind + ')':<28}{a['rank1']:>7.2f}{a['rank5']:>7.2f}{a['mAP']:>7.2f}"
        f"{index_s:>9.1f}"
    )
    print(
        f"{'evaluate_model':<28}{b['rank1']:>7.2f}{b['rank5']:>7.2f}{b['mAP']:>7.2f}{eval_s:>9.1f}"
    )
    diff = max(abs(a[k] - b[k]) for k in ("rank1", "rank5", "mAP"))
    verdict = "match" if diff <= args.tolerance else "DIFFER"
    print(f"largest difference {diff:.4f} points: {verdict} (tolerance {args.tolerance})")
    return 0 if diff <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
