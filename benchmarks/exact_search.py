"""The service's exact search (``omnireid.serve.exact``) over ``benchmarks/serve_load.py``'s
synthetic gallery: milliseconds a search and a query, for batches of 1, 4 and 8 queries, with
the gallery in 4,096-row chunks only (one kernel call each: the layout before small chunks were
merged; the baseline) and as the service packs it now (chunks of ``MERGE * CHUNK`` rows).
Both answer the same (checked); the ratio is baseline / now. One thread; run it on a quiet
machine (wall time).

Usage: python benchmarks/exact_search.py [--entries 100000] [--seconds 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from unittest import mock

import numpy as np
import torch
from common import machine
from serve_load import synthetic

from omnireid.serve import exact


def build(gallery: np.ndarray, merged: bool) -> exact.ExactSearch:
    with mock.patch.object(exact, "MERGE", exact.MERGE if merged else 10**9):
        search = exact.ExactSearch(gallery.shape[1], lambda seqs: gallery[seqs])
        for start in range(0, len(gallery), 10_000):  # as the store loads: 10,000 rows a read
            seqs = np.arange(start, min(start + 10_000, len(gallery)))
            search.add(seqs, gallery[seqs])
        search.flush()
    return search


def timed(search: exact.ExactSearch, queries: np.ndarray, batch: int, seconds: float) -> float:
    """Wall milliseconds a search of ``batch`` queries, over ``seconds``."""
    search.search(queries[:batch], 10)
    searches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for s in range(0, len(queries) - batch + 1, batch):
            search.search(queries[s : s + batch], 10)
            searches += 1
    return (time.perf_counter() - start) / searches * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--json", help="write the results to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(1)
    gallery, queries, _ = synthetic(args.entries, 96, 512)
    before, now = build(gallery, merged=False), build(gallery, merged=True)
    seqs_before, _ = before.search(queries, 10)
    seqs_now, _ = now.search(queries, 10)
    assert all((a == b).all() for a, b in zip(seqs_before, seqs_now, strict=True))
    print(f"machine: {machine()}")
    print(f"{args.entries} x 512 gallery: {len(before._chunks)} chunks before, "
          f"{len(now._chunks)} now")  # fmt: skip
    print("| queries a search | before ms/search | now ms/search | now ms/query | ratio |")
    print("|---:|---:|---:|---:|---:|")
    rows = []
    for batch in (1, 4, 8):
        b, n = timed(before, queries, batch, args.seconds), timed(now, queries, batch, args.seconds)
        rows.append({"batch": batch, "before_ms": round(b, 3), "now_ms": round(n, 3)})
        print(f"| {batch} | {b:.2f} | {n:.2f} | {n / batch:.3f} | {b / n:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "entries": args.entries, "results": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
