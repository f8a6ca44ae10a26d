"""One run per folder: an OS lock on ``out_dir/.lock``, held while the run lives.

``RunLock(out_dir)`` opens ``out_dir/.lock`` and takes an exclusive ``flock`` on it without
waiting; the kernel grants it to one process at a time and drops it when that process ends,
however it ends (a crash, ``kill -9``). The holder writes its host, process id and start time
into the file, and a refused run names them: ``RunLockedError``. A lock file nobody holds is
what a run that died leaves behind: the next run takes it over with a warning naming the run
that ended. On release the holder removes the file while still holding the lock; a process
that locked the file just before it was removed notices (the path no longer leads to the file
it holds) and tries again on the new one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from omnireid.errors import OmniReIDError
from omnireid.rundir import RunDir

log = logging.getLogger(__name__)


class RunLockedError(OmniReIDError, RuntimeError):
    """Another live process is using the run folder."""


def _read_owner(fd: int) -> dict:
    """The owner record a lock file holds ({} when empty or unreadable)."""
    try:
        data = os.pread(fd, 4096, 0)
        owner = json.loads(data.decode())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _current(owner: dict) -> bool:
    """Whether ``owner`` can be the lock's holder: a record, and not one of a process of this
    host that no longer exists (a stale record the new holder is about to replace)."""
    if not owner:
        return False
    if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return True
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # exists, someone else's; or not a pid at all
        return True
    return True


def _describe(owner: dict) -> str:
    if not owner:
        return "a process that wrote no name"
    started = owner.get("started")
    since = (
        time.strftime(" since %Y-%m-%d %H:%M", time.localtime(started))
        if isinstance(started, int | float)
        else ""
    )
    return f"process {owner.get('pid', '?')} on {owner.get('host', '?')}{since}"


class RunLock:
    def __init__(self, out_dir: str | Path) -> None:
        self.path = RunDir(Path(out_dir)).lock
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> None:
        """Lock the run folder or raise ``RunLockedError`` naming the process that holds it."""
        if self.fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                for _ in range(20):  # the holder writes its name just after locking
                    if _current(owner):
                        break
                    time.sleep(0.05)
                    owner = _read_owner(fd)
                os.close(fd)
                holder = _describe(owner) if _current(owner) else "another process"
                raise RunLockedError(
                    f"{self.path.parent} is being trained by {holder}; wait for it to finish, "
                    "or use another train.out_dir"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            if self._still_named(fd):
                break
            os.close(fd)  # the file was removed by the run that released it: lock the new one
        stale = _read_owner(fd)
        if stale:
            log.warning(
                "taking over the stale lock of a run that ended (%s): %s",
                _describe(stale),
                self.path,
            )
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self.fd = fd

    def _still_named(self, fd: int) -> bool:
        """Whether ``self.path`` still leads to the file open as ``fd``."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: see the module docstring
        finally:
            os.close(self.fd)  # closing drops the lock
            self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
