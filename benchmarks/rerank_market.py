"""Benchmark k-reciprocal re-ranking at Market-1501 scale (3,368 queries x 15,913 gallery).

Random, seeded 512-d features stand in for real embeddings; the inputs are float32 squared
Euclidean distance matrices, as evaluation code feeds them. Each implementation runs in its own
subprocess that builds the inputs, then

* times one call and records the process's peak RSS during it (the kernel's peak counter is
  reset just before the call, so it is the call's peak, inputs and libraries included), and
* unless ``--no-tracemalloc``, repeats the call under ``tracemalloc`` for the peak of memory the
  call itself allocates (numpy reports its buffers there) -- the algorithm's working memory,
  output included, free of allocator reuse effects.

    .venv/bin/python benchmarks/rerank_market.py                      # omnireid only, full scale
    .venv/bin/python benchmarks/rerank_market.py --scale 0.25 --with-reference

The reference (``torchreid.reid.utils.rerank.re_ranking``) holds several dense
``(q+g) x (q+g)`` arrays; it is refused when its estimated footprint, inputs included, exceeds
``--max-ref-gb``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import torch
from common import machine

MARKET_QUERY, MARKET_GALLERY = 3368, 15913
# Dense n x n arrays the reference holds at its peak, in bytes per element: the float32
# original distance, float32 V, and the int64 argsort result next to its int32 copy
# (measured: ~19 bytes per element of extra memory at --scale 0.25 and 0.5).
REFERENCE_BYTES_PER_PAIR = 4 + 4 + 8 + 4


def _memory_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field in KiB (falls back to ``ru_maxrss``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False when unavailable."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _squared_euclidean(a: torch.Tensor, b: torch.Tensor, out: np.ndarray) -> None:
    """Fill ``out`` with squared Euclidean distances between rows of ``a`` and ``b``, by blocks."""
    b_norm = (b * b).sum(1)
    for start in range(0, a.shape[0], 1024):
        x = a[start : start + 1024]
        d = (x * x).sum(1, keepdim=True) + b_norm - 2 * x @ b.T
        out[start : start + len(x)] = d.clamp_min_(0).numpy()


def make_inputs(
    num_query: int, num_gallery: int, dim: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random features -> float32 ``(q_g, q_q, g_g)`` squared Euclidean distances."""
    gen = torch.Generator().manual_seed(seed)
    # a few identities: gallery samples are noisy copies of shared centres, as in re-id data
    centres = torch.randn(max(1, num_gallery // 20), dim, generator=gen)
    g_ids = torch.randint(len(centres), (num_gallery,), generator=gen)
    q_ids = torch.randint(len(centres), (num_query,), generator=gen)
    gallery = centres[g_ids] + 0.8 * torch.randn(num_gallery, dim, generator=gen)
    query = centres[q_ids] + 0.8 * torch.randn(num_query, dim, generator=gen)
    q_g = np.empty((num_query, num_gallery), dtype=np.float32)
    q_q = np.empty((num_query, num_query), dtype=np.float32)
    g_g = np.empty((num_gallery, num_gallery), dtype=np.float32)
    _squared_euclidean(query, gallery, q_g)
    _squared_euclidean(query, query, q_q)
    _squared_euclidean(gallery, gallery, g_g)
    return q_g, q_q, g_g


def _worker(args: argparse.Namespace) -> None:
    """Run one implementation and print a JSON record of its time and memory."""
    torch.set_num_threads(os.cpu_count() or 1)
    q_g, q_q, g_g = make_inputs(args.num_query, args.num_gallery, args.dim, args.seed)
    if args.worker == "ours":
        from omnireid.evaluation.rerank import rerank as fn
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchreid.reid.utils.rerank import re_ranking as fn
    params = {"k1": args.k1, "k2": args.k2, "lambda_value": args.lambda_value}
    baseline = _memory_kib("VmRSS")
    exact_peak = _reset_peak()
    start = time.perf_counter()
    out = fn(q_g, q_q, g_g, **params)
    seconds = time.perf_counter() - start
    peak = _memory_kib("VmHWM")
    if args.save:
        np.save(args.save, out)
    del out
    record = {
        "seconds": seconds,
        "peak_rss_mib": peak / 1024,
        "before_rss_mib": baseline / 1024,
        "peak_exact": exact_peak,
        "traced_peak_mib": None,
    }
    if args.tracemalloc:
        tracemalloc.start()
        fn(q_g, q_q, g_g, **params)
        record["traced_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    print(json.dumps(record))


def _run_worker(args: argparse.Namespace, which: str, save: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--save", str(save)]
    cmd += [] if args.tracemalloc else ["--no-tracemalloc"]
    for name in ("num_query", "num_gallery", "dim", "seed", "k1", "k2", "lambda_value"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of Market-1501 size")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda-value", type=float, default=0.3)
    parser.add_argument("--with-reference", action="store_true", help="also run torchreid's")
    parser.add_argument("--max-ref-gb", type=float, default=8.0)
    parser.add_argument(
        "--no-tracemalloc",
        dest="tracemalloc",
        action="store_false",
        help="skip the second, traced call that measures allocated working memory",
    )
    parser.add_argument("--worker", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--num-query", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--num-gallery", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return

    args.num_query = max(1, round(MARKET_QUERY * args.scale))
    args.num_gallery = max(1, round(MARKET_GALLERY * args.scale))
    n = args.num_query + args.num_gallery
    print(f"machine: {machine()}, numpy {np.__version__}, torch {torch.__version__}")
    print(
        f"inputs: {args.num_query} queries x {args.num_gallery} gallery ({n} x {n} joint), "
        f"{args.dim}-d, seed {args.seed}; k1={args.k1} k2={args.k2} lambda={args.lambda_value}"
    )
    runs = ["ours"]
    if args.with_reference:
        q, g = args.num_query, args.num_gallery
        inputs = 4 * (q * q + q * g + g * g)  # float32 q_q, q_g, g_g
        estimate_gb = (n * n * REFERENCE_BYTES_PER_PAIR + inputs) / 1e9
        if estimate_gb > args.max_ref_gb:
            print(
                f"reference skipped: needs ~{estimate_gb:.1f} GB (dense n x n arrays and inputs,"
                f" > --max-ref-gb {args.max_ref_gb}); use a smaller --scale"
            )
        else:
            runs.append("reference")

    results, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for which in runs:
            save = Path(tmp) / f"{which}.npy"
            r = results[which] = _run_worker(args, which, save)
            outputs[which] = np.load(save)
            note = "" if r["peak_exact"] else " (process-lifetime peak)"
            traced = r["traced_peak_mib"]
            print(
                f"{which:>9}: {r['seconds']:8.2f} s | peak RSS {r['peak_rss_mib']:6.0f} MiB{note}"
                f" ({r['before_rss_mib']:.0f} MiB before the call: inputs + libraries)"
                + ("" if traced is None else f" | allocated by the call {traced:6.0f} MiB")
            )
    if "reference" in results:
        ours, ref = results["ours"], results["reference"]
        line = (
            f"reference / ours: time x{ref['seconds'] / ours['seconds']:.1f}, "
            f"peak RSS x{ref['peak_rss_mib'] / ours['peak_rss_mib']:.1f}"
        )
        if ours["traced_peak_mib"]:
            line += f", allocated x{ref['traced_peak_mib'] / ours['traced_peak_mib']:.1f}"
        print(line)
        diff = np.abs(outputs["ours"] - outputs["reference"]).max()
        print(f"max |ours - reference| = {diff:.2e}")


if __name__ == "__main__":
    main()
