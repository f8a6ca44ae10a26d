"""Load on `omnireid serve`: concurrent clients identifying against a 100,000-entry gallery.

For each backend (``faiss``: SQLite + the in-memory exact search; ``qdrant``: qdrant-client's
local mode, in-process, exact numpy search, started with ``--unsafe-local-qdrant`` as a
development store), the same seeded synthetic gallery of ``--entries`` 512-d re-ID-like
features (``--entries / 10`` identities, each entry = identity centre + noise) is written
straight into the store (features, not images), then ``omnireid serve`` starts on it as a
separate process on 127.0.0.1 with API keys, and ``--clients`` clients, each with its own
keep-alive HTTP/1.1 connection, send ``POST /identify`` with ``--batch`` query features
(default 1) and k=10 until ``--seconds`` pass or ``--max-requests`` are sent.

The clients are coroutines on one asyncio event loop in this process, writing pre-encoded
requests to raw sockets and reading the answers (status, Content-Length, the top-1 ids): about
0.1 ms of CPU a request. On a 2-core machine the clients share the cores with the server, so a
heavier client (httpx in threads, ~1 ms a request and the GIL) would measure itself as much as
the server. Reported, per backend: the machine (CPU model, cores, load average before and
after), time to load the gallery and to start the server, requests, errors (any non-200 or
failed request; target 0), requests/s, p50/p99 latency, top-1 accuracy (the best match is of
the query's identity: both backends answer the same), the queries per search the server's
batching made, and the CPU time per request of the server process (all its threads, from
``/proc``) and of the clients: the CPU per request does not depend on what else runs on the
machine the way throughput does, so a run beside other work still shows where a change helps.
``--json FILE`` writes all of it.

Loopback only, bounded in count and time; the servers are stopped at the end.
Usage: python benchmarks/serve_load.py [--entries 100000] [--clients 8] [--batch 1]
       [--seconds 20] [--backends faiss qdrant] [--weights W] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from common import cpu_name

from omnireid.serve.store import Entry
from omnireid.serve.stores import open_store

ROOT = Path(__file__).resolve().parents[1]


PACKAGES = ("faiss-cpu", "torch", "qdrant-client", "fastapi", "uvicorn", "uvloop", "httptools")


def machine() -> dict:
    """The machine: CPU (``common.cpu_name``), cores, memory, library versions."""
    mem = None
    if Path("/proc/meminfo").exists():
        mem = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = version(p)
        except Exception:
            versions[p] = None
    flags: list[str] = []
    if Path("/proc/cpuinfo").exists():
        text = Path("/proc/cpuinfo").read_text()
        found = set(re.findall(r"^flags\s*:(.*)$", text, re.MULTILINE)[0].split()) if text else ()
        flags = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16") if f in found]
    return {
        "cpu": cpu_name(),
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
        "versions": versions,
    }


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid``, all its threads (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    store = open_store(backend, folder, meta, unsafe_local_qdrant=True)
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
    command = [sys.executable, "-m", "omnireid", "serve", "--store", backend]
    command += ["--index", str(folder), "--weights", str(weights), "--port", "0"]
    if backend == "qdrant":  # local mode: a development store (see docs/serve.md)
        command.append("--unsafe-local-qdrant")
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


def _request(url: str, key: str, body: dict) -> bytes:
    """``POST /identify`` as bytes on the wire: HTTP/1.1, keep-alive, the key, a JSON body."""
    host = url.split("//", 1)[1]
    data = json.dumps(body).encode()
    head = (
        f"POST /identify HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


_TOP1 = re.compile(rb'\{"matches":\[\{"id":"((?:[^"\\]|\\.)*)"')
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)


def _top1(body: bytes, queries: int) -> list[str]:
    """The best match's id of each result (compact JSON: a regular expression, else json)."""
    found = _TOP1.findall(body)
    if len(found) == queries:
        return [json.loads(b'"' + f + b'"') for f in found]
    return [r["matches"][0]["id"] for r in json.loads(body)["results"]]


async def _exchange(reader, writer, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = _LENGTH.search(head)
    if length is None:
        raise ConnectionError("an answer without Content-Length")
    return int(head[9:12]), await reader.readexactly(int(length.group(1)))


async def _clients(url: str, requests: list[bytes], sizes: list[int], args) -> dict:
    """``args.clients`` coroutines, each on its own connection, sending ``requests`` (of
    ``sizes`` queries) round-robin; a failed connection is opened again."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    b = args.batch
    latencies: list[float] = []
    errors = 0
    top1: dict[int, str] = {}
    budget = [args.max_requests]
    deadline = time.perf_counter() + args.seconds

    async def client(c: int) -> None:
        nonlocal errors
        connection = None
        i = c
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            q = i % len(requests)
            i += args.clients
            t0 = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, int(port))
                status, body = await asyncio.wait_for(_exchange(*connection, requests[q]), 60)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                if connection is not None:
                    connection[1].close()
                connection, status, body = None, 0, b""
            latencies.append(time.perf_counter() - t0)
            if status == 200:
                for j, best in enumerate(_top1(body, sizes[q])):
                    top1[q * b + j] = best
            else:
                errors += 1
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(client(c) for c in range(args.clients)))
    return {"latencies": latencies, "errors": errors, "top1": top1}


def run_clients(url: str, key: str, queries: np.ndarray, pid: int, args) -> dict:
    """``args.clients`` clients sending identify requests; latencies, errors, top-1 ids, and
    the CPU time the server (process ``pid``) and the clients spent."""
    b = args.batch
    chunks = [queries[s : s + b] for s in range(0, len(queries), b)]
    requests = [_request(url, key, {"features": c.tolist(), "k": 10}) for c in chunks]
    sizes = [len(c) for c in chunks]
    warm = argparse.Namespace(**{**vars(args), "seconds": 30.0, "max_requests": 40})
    asyncio.run(_clients(url, requests, sizes, warm))  # not measured: first searches
    server0, client0 = cpu_seconds(pid), time.process_time()
    start = time.perf_counter()
    r = asyncio.run(_clients(url, requests, sizes, args))
    wall = time.perf_counter() - start
    server1, client1 = cpu_seconds(pid), time.process_time()
    n = max(1, len(r["latencies"]))
    server = None if server0 is None or server1 is None else (server1 - server0) / n
    lat = np.asarray(r["latencies"]) * 1000
    return {
        "requests": len(lat),
        "errors": r["errors"],
        "wall": wall,
        "lat": lat,
        "top1": r["top1"],
        "server_cpu_ms": None if server is None else 1000 * server,
        "client_cpu_ms": 1000 * (client1 - client0) / n,
    }


def searches(url: str, key: str) -> dict:
    """The server's counts (``/stats``): identified queries and store searches."""
    import urllib.request

    ask = urllib.request.Request(url + "/stats", headers={"X-API-Key": key})
    with urllib.request.urlopen(ask, timeout=30) as answer:
        return json.load(answer)["counts"]


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
    p.add_argument("--json", help="write the results to this JSON file")
    args = p.parse_args()
    host = machine()
    print(
        f"machine: {host['cpu']} ({' '.join(host['cpu_flags'])}), {host['cores']} cores, "
        f"{host['memory_gib']} GiB, no GPU used; "
        f"python {host['python']}, "
        + ", ".join(f"{k} {v}" for k, v in host["versions"].items() if v)
    )
    gallery, queries, q_pids = synthetic(args.entries, args.queries, 512)
    key = secrets.token_urlsafe(24)
    rows = []
    with tempfile.TemporaryDirectory(prefix="omnireid-serve-load-") as tmp:
        weights = Path(args.weights) if args.weights else Path(tmp) / "osnet_x0_25_random.pt"
        if not args.weights:
            import torch

            from omnireid.models import build

            torch.save(build("osnet_x0_25", num_classes=10).state_dict(), weights)
        from omnireid.models.spec import ModelSpec
        from omnireid.models.weights import file_sha256
        from omnireid.serve.store import gallery_meta

        spec = ModelSpec("osnet_x0_25", weights_sha256=file_sha256(weights))
        meta = gallery_meta(spec, 512)
        for backend in args.backends:
            folder = Path(tmp) / backend
            loaded = load_gallery(backend, folder, gallery, meta)
            log = Path(tmp) / f"{backend}.log"
            process, url, started = start_server(backend, folder, weights, key, log)
            load_before = load_average()
            try:
                r = run_clients(url, key, queries, process.pid, args)
                counts = searches(url, key)
            finally:
                process.terminate()
                process.wait(timeout=60)
            right = [int(i.split("-")[0]) == q_pids[q] for q, i in r["top1"].items()]
            p50, p99 = np.percentile(r["lat"], [50, 99]) if len(r["lat"]) else (None, None)
            rows.append({
                "backend": backend,
                "load_gallery_s": round(loaded, 2),
                "server_ready_s": round(started, 2),
                "requests": r["requests"],
                "errors": r["errors"],
                "seconds": round(r["wall"], 2),
                "requests_per_s": round(r["requests"] / r["wall"], 1),
                "queries_per_s": round(args.batch * r["requests"] / r["wall"], 1),
                "p50_ms": None if p50 is None else round(float(p50), 2),
                "p99_ms": None if p99 is None else round(float(p99), 2),
                "top1_percent": round(100 * float(np.mean(right)), 2) if right else 0.0,
                "server_cpu_ms_per_request": r["server_cpu_ms"] and round(r["server_cpu_ms"], 3),
                "client_cpu_ms_per_request": round(r["client_cpu_ms"], 3),
                # the server's counts over its whole life (warm-up included)
                "queries_per_search": round(counts["identified"] / max(1, counts["searches"]), 2),
                "load_average_before": load_before,
                "load_average_after": load_average(),
            })  # fmt: skip
            print(f"{backend}: done ({r['requests']} requests)", flush=True)
    print(
        f"\n{args.entries} entries x 512-d, {args.clients} clients, {args.batch} queries a "
        f"request, k=10, at most {args.seconds:g} s or {args.max_requests} requests per backend"
    )
    head = ["backend", "load gallery", "server ready", "requests", "errors", "req/s", "queries/s"]
    head += ["p50 ms", "p99 ms", "top-1", "server CPU ms/req", "client CPU ms/req"]
    head += ["queries/search", "load avg before / after"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for r in rows:
        server = r["server_cpu_ms_per_request"]
        print(
            f"| {r['backend']} | {r['load_gallery_s']:.1f} s | {r['server_ready_s']:.1f} s | "
            f"{r['requests']} | {r['errors']} | {r['requests_per_s']:.1f} | "
            f"{r['queries_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['top1_percent']:.1f}% | {'n/a' if server is None else f'{server:.2f}'} | "
            f"{r['client_cpu_ms_per_request']:.2f} | {r['queries_per_search']:.1f} | "
            f"{r['load_average_before']} / {r['load_average_after']} |"
        )
    if args.json:
        settings = {k: getattr(args, k) for k in ("entries", "queries", "clients", "batch")}
        settings.update(seconds=args.seconds, max_requests=args.max_requests, k=10)
        out = {"machine": host, "settings": settings, "results": rows}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
