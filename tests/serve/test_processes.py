"""What only separate `omnireid serve` processes show: a delete outlives a restart, a second
server on a gallery folder is refused, and a burst of large images leaves no lasting growth."""

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from omnireid.deploy.index import GalleryIndex
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing
from tests.serve.helpers import (
    READ_KEY,
    WRITE_KEY,
    ServerProcess,
    b64,
    png_bytes,
    serve_command,
    unit_rows,
)

WRITE = {"X-API-Key": WRITE_KEY}


def server_args(folder: Path, weights: Path, *extra: str) -> list[str]:
    return [
        "--index", str(folder), "--weights", str(weights), "--height", "128", "--width", "64",
        "--threshold", "0.5", "--extractor", "torch", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("backend", ["faiss", pytest.param("qdrant", marks=pytest.mark.slow)])
def test_deleted_entries_of_an_imported_index_stay_deleted_after_a_restart(
    tmp_path, toy_weights, backend
):
    folder = tmp_path / "gallery"
    feats = unit_rows(3, 512, seed=1)
    paths = [f"/site/{i}.jpg" for i in range(3)]
    spec = ModelSpec("osnet_x0_25", feature_dim=512, preprocessing=Preprocessing(128, 64))
    GalleryIndex.build(feats, paths, spec=spec).save(folder)
    extra = ["--store", backend] + (["--unsafe-local-qdrant"] if backend == "qdrant" else [])
    args = server_args(folder, toy_weights, *extra)
    first = ServerProcess(args, tmp_path / "first.log")
    try:
        with httpx.Client(base_url=first.url, headers=WRITE, timeout=60) as http:
            assert http.get("/stats").json()["entries"] == 3  # imported on the first start
            for i in range(3):
                assert http.delete(f"/gallery/index-{i}").json() == {
                    "id": f"index-{i}", "removed": True
                }  # fmt: skip
            item = {"id": "kept", "feature": feats[0].tolist()}
            assert http.post("/gallery", json={"items": [item]}).status_code == 201
    finally:
        first.kill()  # kill -9 right after the acknowledged deletes

    second = ServerProcess(args, tmp_path / "second.log")
    try:
        with httpx.Client(base_url=second.url, headers=WRITE, timeout=60) as http:
            assert [http.get(f"/gallery/index-{i}").status_code for i in range(3)] == [404] * 3
            assert http.get("/stats").json()["entries"] == 1
            body = {"features": feats.tolist(), "k": 5}
            results = http.post("/identify", json=body).json()["results"]
            assert [[m["id"] for m in r["matches"]] for r in results] == [["kept"]] * 3
    finally:
        second.kill()


def test_a_second_server_on_the_same_folder_is_refused(tmp_path, toy_weights):
    folder = tmp_path / "gallery"
    args = server_args(folder, toy_weights)
    first = ServerProcess(args, tmp_path / "first.log")
    try:
        with httpx.Client(base_url=first.url, headers=WRITE, timeout=60) as http:
            item = {"id": "a", "feature": unit_rows(1, 512, seed=2)[0].tolist()}
            assert http.post("/gallery", json={"items": [item]}).status_code == 201
            command, env = serve_command(args)
            second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            assert second.returncode == 2, second.stderr
            err = second.stderr.strip()
            assert len(err.splitlines()) == 1, err
            assert err.startswith(f"omnireid serve: error: the gallery {folder.resolve()} is in ")
            assert f"use by another server (process {first.process.pid} on host " in err
            assert http.get("/gallery/a").status_code == 200  # the first serves on, whole
            assert http.post("/gallery", json={"items": [item]}).status_code == 409
    finally:
        first.kill()
    third = ServerProcess(args, tmp_path / "third.log")  # kill -9 left no stale lock behind
    try:
        with httpx.Client(base_url=third.url, headers=WRITE, timeout=60) as http:
            assert http.get("/gallery/a").status_code == 200
    finally:
        third.kill()


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_large_images_within_the_limits_leave_no_lasting_growth(tmp_path, toy_weights):
    """8 images of 2048x2048 (34 MP, ~100 MiB decoded) a request: the server's resident size
    afterwards is within 50 MiB of before (glibc kept ~150 MiB of it when nothing gave the
    freed pages back)."""
    limits = ["--max-image-side", "2048", "--max-images", "9", "--max-request-megapixels", "34"]
    args = server_args(tmp_path / "gallery", toy_weights, *limits, "--max-body-mb", "4")
    server = ServerProcess(args, tmp_path / "server.log")
    large = [b64(png_bytes(2048, 2048, (i * 30, 90, 40))) for i in range(8)]
    small = [b64(png_bytes(64, 128))]
    try:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": READ_KEY}, timeout=120) as h:
            for _ in range(3):
                assert h.post("/embed", json={"images": small}).status_code == 200
            before = rss_mib(server.process.pid)
            for _ in range(3):
                assert h.post("/embed", json={"images": large}).status_code == 200
            assert h.post("/embed", json={"images": small}).status_code == 200
            after = rss_mib(server.process.pid)
            assert after - before < 50, (before, after)
            more = [*large, b64(png_bytes(1024, 1024))]  # 34.6 MP: over the limit together
            answer = h.post("/embed", json={"images": more})
            assert answer.status_code == 413, answer.text
            assert "have 34603008 pixels together; the limit is 34000000" in answer.text
    finally:
        server.kill()
