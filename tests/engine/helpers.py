"""A bare training loop state for testing callbacks one hook at a time, and a process that
holds a run folder's lock."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from omnireid.engine.loop import Loop


def bare_loop(model=None, epoch=0, max_epoch=10, record=None) -> Loop:
    """A ``Loop`` of ``model`` (a 2 -> 2 linear layer by default) with SGD at lr 0.1, at
    0-based ``epoch``, its record holding the 1-based epoch and ``record``."""
    model = model or nn.Linear(2, 2)
    loop = Loop(model, torch.optim.SGD(model.parameters(), lr=0.1), max_epoch)
    loop.epoch = epoch
    loop.record = {"epoch": epoch + 1, **(record or {})}
    return loop


@contextmanager
def lock_holder(folder: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``folder``'s run lock (``engine.lock.RunLock``) while the
    context lasts; it is then killed, as ``kill -9`` would (no release)."""
    script = (
        "import sys, time; from omnireid.engine.lock import RunLock; "
        "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
