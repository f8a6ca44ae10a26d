"""One server per gallery folder: an exclusive OS lock held for the life of the store.

``FolderLock(folder)`` takes ``flock(LOCK_EX | LOCK_NB)`` on ``folder/serve.lock`` and writes
its holder there (process id, host, start time, for the message a second server gets). The
kernel drops the lock when the process ends in any way (``kill -9`` included), so a lock is
never stale; the file itself stays and is reused. A second store on the same folder, in this
process or another one, is refused with ``UsageError`` naming the folder and the holder.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from omnireid.errors import UsageError

LOCK_FILE = "serve.lock"


def _holder(fd: int) -> str:
    """What the lock file says about its holder, as a phrase."""
    try:
        raw = os.pread(fd, 4096, 0)
        owner = json.loads(raw.decode())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(owner["started"])))
        return f"process {int(owner['pid'])} on host {owner['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"


class FolderLock:
    """The exclusive lock of a gallery folder (created when missing); ``release()`` frees it."""

    def __init__(self, folder: str | Path) -> None:
        try:
            import fcntl
        except ImportError as e:  # pragma: no cover - Windows
            raise UsageError("the gallery service needs a POSIX system (fcntl.flock)") from e
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(
                f"the gallery {self.folder} is in use by another server ({holder}; "
                f"{self.path}): one server per gallery folder, stop that one or use another "
                "folder"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Free the lock (closing the file frees it); the file stays for the next holder."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
