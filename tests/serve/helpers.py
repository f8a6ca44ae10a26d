"""A real uvicorn server for the service tests: in a thread (fast) or as an `omnireid serve`
process (for kill -9), on 127.0.0.1 and a free port, always stopped within a bounded time."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import uvicorn
from PIL import Image

from omnireid.serve.server import bind

READ_KEY = "read-key-0123456789abcdef"
WRITE_KEY = "write-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png_bytes(width: int, height: int, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@contextmanager
def serving_in_thread(app) -> Iterator[str]:
    """``app`` under uvicorn in a daemon thread; yields its base URL; stops on exit."""
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the test server did not start within 20 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve_command(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment (keys) of ``omnireid serve ARGS --port 0``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env["OMNIREID_READ_KEYS"], env["OMNIREID_WRITE_KEYS"] = READ_KEY, WRITE_KEY
    return [sys.executable, "-m", "omnireid", "serve", *args, "--port", "0"], env


class ServerProcess:
    """``python -m omnireid serve ARGS --port 0`` with its log in ``log``; ``url`` once ready."""

    def __init__(self, args: list[str], log: Path, timeout: float = 90.0) -> None:
        command, env = serve_command(args)
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=out, env=env, cwd=ROOT)
        self.url = self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(r"serving on (http://127\.0\.0\.1:\d+)", self.log.read_text())
            if found:
                return found[-1]
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()}")
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"the server was not ready within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or power cut of the process."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
