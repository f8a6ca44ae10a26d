"""Load on `omnireid serve`: concurrent clients identifying against a 100,000-entry gallery.

For each backend (``faiss``: SQLite + in-memory exact FAISS; ``qdrant``: qdrant-client's local
mode, in-process, exact numpy search), the same seeded synthetic gallery of ``--entries``
512-d re-ID-like features (``--entries / 10`` identities, each entry = identity centre +
noise) is written straight into the store (features, not images), then ``omnireid serve``
starts on it as a separate process on 127.0.0.1 with API keys, and ``--clients`` threads,
each with its own HTTP connection, send ``POST /identify`` with ``--batch`` query features
(default 1) and k=10 until ``--seconds`` pass or ``--max-requests`` are sent. Reported: time
to load the gallery and to start the server on it, requests, errors (any non-200 or failed
request; target 0), throughput, p50/p99 latency per request, and top-1 accuracy (the best
match is of the query's identity) as a check that both backends answer the same.

Loopback only, bounded in count and time; the servers are stopped at the end.
Usage: nice -n 5 python benchmarks/serve_load.py [--entries 100000] [--clients 8]
       [--batch 1] [--seconds 20] [--backends faiss qdrant] [--weights W]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np
from common import cpu_name

from omnireid.serve.backends import open_store
from omnireid.serve.store import Entry

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """The service's machine line: CPU (``common.cpu_name``), memory, library versions, load."""
    cpu = cpu_name()
    mem = ""
    if Path("/proc/meminfo").exists():
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("faiss-cpu", "qdrant-client", "fastapi", "uvicorn")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, no GPU used; python {platform.python_version()}, "
        f"{versions}; load average at start {load}"
    )


def synthetic(n: int, queries: int, dim: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``(n, dim)`` gallery (row i of identity i % (n // 10)), ``(queries, dim)`` fresh
    images of random identities and their ids; L2-normalised float32."""
    rng = np.random.default_rng(seed)
    ids = max(1, n // 10)
    centres = rng.standard_normal((ids, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def images(pids: np.ndarray) -> np.ndarray:
        x = centres[pids] + 0.9 / np.sqrt(dim) * rng.standard_normal((len(pids), dim), np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    q_pids = rng.integers(0, ids, queries)
    return images(np.arange(n) % ids), images(q_pids), q_pids


def load_gallery(backend: str, folder: Path, feats: np.ndarray, meta: dict) -> float:
    """Write the gallery straight into the store; seconds taken."""
    start = time.perf_counter()
    store = open_store(backend, folder, meta)
    if backend == "qdrant":
        # local mode commits each point on its own with fsync (~5 ms here, 8 min for 100k):
        # the bulk load skips the fsyncs; the server then opens the store as usual
        collection = store.client._client.collections[store.collection]
        collection.storage.storage.execute("PRAGMA synchronous=OFF")
    n_ids = max(1, len(feats) // 10)
    for s in range(0, len(feats), 5000):
        rows = range(s, min(s + 5000, len(feats)))
        entries = [Entry(f"{i % n_ids}-{i}", camera=i % 6, track_id=f"t{i}") for i in rows]
        store.add(entries, feats[s : s + 5000])
    store.close()
    return time.perf_counter() - start


def start_server(backend: str, folder: Path, weights: Path, key: str, log: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMNIREID_READ_KEYS": key}
    command = [sys.executable, "-m", "omnireid", "serve", "--backend", backend]
    command += ["--index", str(folder), "--weights", str(weights), "--port", "0"]
    start = time.perf_counter()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    while time.perf_counter() - start < 900:
        found = re.findall(r"serving on (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            return process, found[-1], time.perf_counter() - start
        if process.poll() is not None:
            raise SystemExit(f"the {backend} server exited:\n{log.read_text()}")
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the {backend} server did not start within 900 s")


def run_clients(url: str, key: str, queries: np.ndarray, args: argparse.Namespace) -> dict:
    """``args.clients`` threads sending identify requests; latencies, errors, top-1 ids."""
    b = args.batch
    bodies = [{"features": queries[s : s + b].tolist(), "k": 10} for s in range(0, len(queries), b)]
    latencies: list[list[float]] = [[] for _ in range(args.clients)]
    errors = [0] * args.clients
    top1: dict[int, str] = {}
    budget = threading.Semaphore(args.max_requests)
    deadline = time.perf_counter() + args.seconds

    def client(c: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as http:
            i = c
            while time.perf_counter() < deadline and budget.acquire(blocking=False):
                q = i % len(bodies)
                t0 = time.perf_counter()
                try:
                    answer = http.post("/identify", json=bodies[q])
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies[c].append(time.perf_counter() - t0)
                if ok:
                    for j, result in enumerate(answer.json()["results"]):
                        top1[q * b + j] = result["matches"][0]["id"]
                else:
                    errors[c] += 1
                i += args.clients

    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as http:
        for body in bodies[:20]:  # warm-up, not measured
            http.post("/identify", json=body)
    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1000
    return {"requests": len(lat), "errors": sum(errors), "wall": wall, "lat": lat, "top1": top1}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--batch", type=int, default=1, help="query features per request (1)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--max-requests", type=int, default=50_000)
    p.add_argument(
        "--backends", nargs="+", choices=("faiss", "qdrant"), default=["faiss", "qdrant"]
    )
    p.add_argument("--weights", help="model weights (default: a random OSNet x0.25, written here)")
    args = p.parse_args()
    print(f"machine: {machine()}")
    gallery, queries, q_pids = synthetic(args.entries, args.queries, 512)
    key = secrets.token_urlsafe(24)
    rows = []
    with tempfile.TemporaryDirectory(prefix="omnireid-serve-load-") as tmp:
        weights = Path(args.weights) if args.weights else Path(tmp) / "osnet_x0_25_random.pt"
        if not args.weights:
            import torch

            from omnireid.models import build

            torch.save(build("osnet_x0_25", num_classes=10).state_dict(), weights)
        from omnireid.models.weights import weights_provenance

        meta = {"dim": 512, "arch": "osnet_x0_25"}
        meta["weights_sha256"] = weights_provenance(weights)["sha256"]
        for backend in args.backends:
            folder = Path(tmp) / backend
            loaded = load_gallery(backend, folder, gallery, meta)
            log = Path(tmp) / f"{backend}.log"
            process, url, started = start_server(backend, folder, weights, key, log)
            try:
                r = run_clients(url, key, queries, args)
            finally:
                process.terminate()
                process.wait(timeout=60)
            right = [int(i.split("-")[0]) == q_pids[q] for q, i in r["top1"].items()]
            rows.append((backend, loaded, started, r, 100 * np.mean(right) if right else 0.0))
            print(f"{backend}: done ({r['requests']} requests)", flush=True)
    print(
        f"\n{args.entries} entries x 512-d, {args.clients} clients, {args.batch} queries a "
        f"request, k=10, at most {args.seconds:g} s or {args.max_requests} requests per backend"
    )
    head = ["backend", "load gallery", "server ready", "requests", "errors", "req/s", "queries/s"]
    print("| " + " | ".join([*head, "p50 ms", "p99 ms", "top-1"]) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend, loaded, started, r, acc in rows:
        p50, p99 = np.percentile(r["lat"], [50, 99])
        print(
            f"| {backend} | {loaded:.1f} s | {started:.1f} s | {r['requests']} | {r['errors']} | "
            f"{r['requests'] / r['wall']:.1f} | {args.batch * r['requests'] / r['wall']:.1f} | "
            f"{p50:.1f} | {p99:.1f} | {acc:.1f}% |"
        )


if __name__ == "__main__":
    main()
