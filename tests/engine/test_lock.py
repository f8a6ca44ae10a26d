"""One run per folder: the OS lock on ``out_dir/.lock`` goes to exactly one process."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import time
from pathlib import Path

import pytest

from omnireid.engine.lock import RunLock, RunLockedError
from tests.engine.helpers import lock_holder

CONTENDERS = 8
ROUNDS = 8  # a race lost by a non-atomic lock shows in about one round in two


def _contend(folder: Path, barrier, results) -> None:
    """Try to lock ``folder`` the moment every contender is ready; hold a won lock until
    every contender has tried."""
    barrier.wait()
    lock = RunLock(folder)
    try:
        lock.acquire()
        results.put(("won", os.getpid()))
    except RunLockedError as e:
        results.put(("refused", str(e)))
    barrier.wait()
    lock.release()


def _race(folder: Path) -> list[tuple[str, object]]:
    context = multiprocessing.get_context("fork")  # the children only touch the lock file
    barrier, results = context.Barrier(CONTENDERS), context.Queue()
    procs = [
        context.Process(target=_contend, args=(folder, barrier, results)) for _ in range(CONTENDERS)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return outcomes


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale-lock-left"])
def test_exactly_one_of_many_processes_started_together_gets_the_lock(tmp_path, stale):
    for round_ in range(ROUNDS):
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        if stale:  # the lock file a run killed with -9 left behind: nobody holds it
            owner = {"host": socket.gethostname(), "pid": 999_999_999, "started": time.time()}
            (folder / ".lock").write_text(json.dumps(owner))
        outcomes = _race(folder)
        winners = [pid for kind, pid in outcomes if kind == "won"]
        assert len(winners) == 1, outcomes
        refusals = [text for kind, text in outcomes if kind == "refused"]
        assert len(refusals) == CONTENDERS - 1
        for text in refusals:  # the folder, and the winner once it has written its name
            assert str(folder) in text
            assert f"process {winners[0]} on " in text or "by another process;" in text
        assert not (folder / ".lock").exists()  # the winner removed it on release


def test_a_refusal_names_the_folder_and_the_holder_and_a_kill_frees_it(tmp_path, caplog):
    with lock_holder(tmp_path) as holder, pytest.raises(RunLockedError) as error:
        RunLock(tmp_path).acquire()
    message = str(error.value)
    assert str(tmp_path) in message and f"process {holder.pid} on " in message
    assert "use another train.out_dir" in message
    # the holder was killed as kill -9: no release, the file stays, the kernel drops the lock
    assert (tmp_path / ".lock").exists()
    with caplog.at_level(logging.WARNING, logger="omnireid"), RunLock(tmp_path) as lock:
        assert lock.held
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert f"stale lock of a run that ended (process {holder.pid}" in caplog.text


def test_a_lock_file_from_a_live_process_that_does_not_hold_it_is_stale(tmp_path):
    """The file's content is only a name: what counts is who holds the OS lock."""
    owner = {"host": socket.gethostname(), "pid": os.getppid(), "started": time.time()}
    (tmp_path / ".lock").write_text(json.dumps(owner))
    with RunLock(tmp_path), pytest.raises(RunLockedError, match=f"process {os.getpid()} "):
        RunLock(tmp_path).acquire()  # a second lock in the same process is refused too
    with RunLock(tmp_path):  # released: free again
        pass
