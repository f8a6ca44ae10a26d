"""kill -9 at any moment loses nothing acknowledged: writers enrol in a loop, the server
process is killed mid-stream, and the restarted one finds every acknowledged entry."""

import threading
import time

import httpx
import numpy as np
import pytest

from tests.serve.helpers import WRITE_KEY, ServerProcess, unit_rows

WRITERS, BATCH, ACKED_BEFORE_KILL = 3, 4, 60


def enrol_until_stopped(url: str, writer: int, acked: dict, lock: threading.Lock, stop) -> None:
    """Enrol batches of features; record a batch only once the server answered 201."""
    with httpx.Client(base_url=url, headers={"X-API-Key": WRITE_KEY}, timeout=20) as http:
        for i in range(10_000):
            if stop.is_set():
                return
            ids = [f"w{writer}-{i}-{j}" for j in range(BATCH)]
            feats = unit_rows(BATCH, 512, seed=writer * 100_000 + i)
            items = [
                {"id": n, "feature": f.tolist(), "camera": writer}
                for n, f in zip(ids, feats, strict=True)
            ]
            try:
                answer = http.post("/gallery", json={"items": items})
            except httpx.HTTPError:  # the server died mid-request: not acknowledged
                return
            if answer.status_code == 201:
                with lock:
                    acked.update(zip(ids, feats, strict=True))


@pytest.mark.parametrize("backend", ["faiss", pytest.param("qdrant", marks=pytest.mark.slow)])
def test_kill_9_loses_no_acknowledged_enrolment(tmp_path, toy_weights, backend):
    args = ["--index", str(tmp_path / "gallery"), "--weights", str(toy_weights)]
    args += ["--height", "128", "--width", "64", "--store", backend, "--extractor", "torch"]
    args += ["--unsafe-local-qdrant"] if backend == "qdrant" else []
    server = ServerProcess(args, tmp_path / "first.log")
    acked: dict[str, np.ndarray] = {}
    lock, stop = threading.Lock(), threading.Event()
    writers = [
        threading.Thread(target=enrol_until_stopped, args=(server.url, w, acked, lock, stop))
        for w in range(WRITERS)
    ]
    try:
        for t in writers:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < ACKED_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # while the writers are still sending
    finally:
        stop.set()
        server.kill()
        for t in writers:
            t.join(timeout=30)
    assert len(acked) >= ACKED_BEFORE_KILL, server.log.read_text()

    restarted = ServerProcess(args, tmp_path / "second.log")
    try:
        with httpx.Client(base_url=restarted.url, headers={"X-API-Key": WRITE_KEY}) as http:
            assert http.get("/stats").json()["entries"] >= len(acked)
            ids = sorted(acked)
            for start in range(0, len(ids), 100):
                chunk = ids[start : start + 100]
                body = {"features": [acked[n].tolist() for n in chunk], "k": 1}
                results = http.post("/identify", json=body, timeout=60).json()["results"]
                found = [r["matches"][0] for r in results]
                assert [m["id"] for m in found] == chunk
                assert min(m["score"] for m in found) > 0.9999
    finally:
        restarted.kill()
