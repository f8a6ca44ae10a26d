"""One run per folder: a lock file that names its owner and is recovered after a crash.

``RunLock(out_dir)`` creates ``out_dir/.lock`` atomically (``O_EXCL``) holding the owner's
host, process id and start time, and removes it on exit. A second run on the same folder gets
``RunLockedError`` naming the owner. A lock whose owner is gone (same host, no such process:
a crash or kill -9) is taken over with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from omnireid.errors import OmniReIDError

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"


class RunLockedError(OmniReIDError, RuntimeError):
    """Another live process is using the run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / LOCK_FILE
        self.held = False

    def _owner(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                same_host = owner.get("host") == me["host"]
                pid = owner.get("pid")
                if same_host and isinstance(pid, int) and pid != me["pid"] and _alive(pid):
                    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner["started"]))
                    raise RunLockedError(
                        f"{self.path.parent} is being trained by process {pid} on {me['host']} "
                        f"(since {since}); wait for it to finish, or use another train.out_dir"
                    ) from None
                if not same_host and owner:
                    raise RunLockedError(
                        f"{self.path.parent} is locked by process {pid} on host "
                        f"{owner.get('host')}; if that run is over, delete {self.path}"
                    ) from None
                log.warning("taking over the stale lock of a run that ended (%s)", owner or "?")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise RunLockedError(f"could not lock {self.path.parent}")  # pragma: no cover

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
