"""Gallery search at scale: exact (flat) vs approximate (IVF, HNSW) GalleryIndex on the CPU.

A seeded synthetic gallery resembling re-ID features: ``--n`` (default 1,000,000) 512-d
L2-normalised features of ``--n / 10`` identities (identity centres on a 64-d subspace plus a
little isotropic spread, each image = centre + Gaussian noise of norm ``--noise``), and
``--queries`` (default 1,000) fresh images of random identities. For each index: build time,
memory (RSS growth while building), per-query latency in one batch of all queries and one query
at a time, recall@10 against the exact top-10 and the speed-up over exact search. Settings at
<= 10 ms per single query with recall@10 >= 0.95 are listed at the end.

Usage: nice -n 19 python benchmarks/gallery_search.py [--n 100000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time

import faiss
import numpy as np
from common import cpu_name

from omnireid.deploy.index import GalleryIndex

IVF = [(1024, 8), (1024, 16), (1024, 32), (1024, 64)]  # (nlist, nprobe)
HNSW = [(16, 16), (16, 32), (16, 64), (16, 128)]  # (M, efSearch)
EF_CONSTRUCTION = 40


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return kb / 1024


def synthetic(
    n: int, q: int, dim: int, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, dim)`` gallery, ``(q, dim)`` query features (float32, L2-normalised), query ids.

    Gallery row ``i`` is identity ``i % (n // 10)``."""
    rng = np.random.default_rng(seed)
    ids = max(1, n // 10)
    basis = rng.standard_normal((64, dim), dtype=np.float32) / np.sqrt(64)
    centres = rng.standard_normal((ids, 64), dtype=np.float32) @ basis
    centres += 0.3 / np.sqrt(dim) * rng.standard_normal((ids, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def images(pids: np.ndarray) -> np.ndarray:
        out = np.empty((len(pids), dim), np.float32)
        for s in range(0, len(pids), 100_000):
            block = centres[pids[s : s + 100_000]]
            block += noise / np.sqrt(dim) * rng.standard_normal(block.shape, dtype=np.float32)
            out[s : s + 100_000] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out

    q_pids = rng.integers(0, ids, q)
    return images(np.arange(n) % ids), images(q_pids), q_pids


def timed_build(gallery: np.ndarray, **options) -> tuple[GalleryIndex, float, float]:
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    index = GalleryIndex(gallery.shape[1], **options)
    index.add(gallery, [""] * len(gallery))
    return index, time.perf_counter() - start, rss_mb() - before


def latency_ms(index: GalleryIndex, queries: np.ndarray, single: int) -> tuple[float, float]:
    """Per-query milliseconds: all queries in one batch, then ``single`` queries one by one."""
    start = time.perf_counter()
    index.search(queries, 10)
    batch = (time.perf_counter() - start) / len(queries) * 1e3
    start = time.perf_counter()
    for i in range(single):
        index.search(queries[i : i + 1], 10)
    return batch, (time.perf_counter() - start) / single * 1e3


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="gallery size")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--noise", type=float, default=1.0, help="norm of the per-image noise")
    parser.add_argument("--single", type=int, default=100, help="queries timed one by one")
    parser.add_argument("--kinds", nargs="+", default=["ivf", "hnsw"], choices=["ivf", "hnsw"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores ({platform.machine()}), "
        f"faiss {faiss.__version__} with {faiss.omp_get_max_threads()} threads, numpy "
        f"{np.__version__}"
    )
    start = time.perf_counter()
    gallery, queries, q_pids = synthetic(args.n, args.queries, args.dim, args.noise, args.seed)
    print(
        f"data: {args.n:,} gallery x {args.dim}-d ({gallery.nbytes / 2**20:,.0f} MiB), "
        f"{args.queries:,} queries, {args.n // 10:,} identities, generated in "
        f"{time.perf_counter() - start:.1f} s\n"
    )
    print(
        f"{'index':<28}{'build s':>9}{'MiB':>8}{'batch ms/q':>12}{'single ms/q':>13}"
        f"{'speed-up':>10}{'recall@10':>11}"
    )
    exact, build_s, mem = timed_build(gallery, kind="flat")
    truth = exact.search(queries, 10).indices
    same_id = float(np.mean(truth % max(1, args.n // 10) == q_pids[:, None]))
    batch, single = latency_ms(exact, queries, args.single)
    print(
        f"{'flat (exact)':<28}{build_s:>9.1f}{mem:>8.0f}{batch:>12.3f}{single:>13.3f}"
        f"{1.0:>9.1f}x{1.0:>11.3f}"
    )
    del exact
    print(f"  (exact top-10: {100 * same_id:.1f}% of hits are the query's identity)")
    passing = []
    for kind in args.kinds:
        settings = IVF if kind == "ivf" else HNSW
        a = settings[0][0]
        if kind == "ivf":
            options = dict(kind="ivf", nlist=min(a, max(1, args.n // 64)))
            label = f"ivf nlist={options['nlist']}"
        else:
            options = dict(kind="hnsw", hnsw_m=a, ef_construction=EF_CONSTRUCTION)
            label = f"hnsw M={a} efC={EF_CONSTRUCTION}"
        index, build_s, mem = timed_build(gallery, **options)
        print(f"{label:<28}{build_s:>9.1f}{mem:>8.0f}")
        for _, b in settings:
            index.params["nprobe" if kind == "ivf" else "ef_search"] = b
            name = f"  nprobe={b}" if kind == "ivf" else f"  efSearch={b}"
            recall = recall_at_10(index.search(queries, 10).indices, truth)
            bq, sq = latency_ms(index, queries, args.single)
            print(
                f"{name:<28}{'':>9}{'':>8}{bq:>12.3f}{sq:>13.3f}{single / sq:>9.1f}x{recall:>11.3f}"
            )
            if sq <= 10 and recall >= 0.95:
                passing.append(f"{label.strip()} {name.strip()}: {sq:.2f} ms, recall {recall:.3f}")
        del index
        gc.collect()
    print("\nspeed-up: exact single-query latency / this one's (same run, same queries)")
    print("meets <= 10 ms per single query at recall@10 >= 0.95:")
    print("\n".join(f"  {p}" for p in passing) if passing else "  none")


if __name__ == "__main__":
    main()
