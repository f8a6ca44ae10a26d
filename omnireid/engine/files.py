"""How a run folder's files reach the disk: whole or not at all, and a full disk said plainly.

``write_atomic(path, data)`` writes a temporary file beside ``path``, flushes it to disk and
renames it over ``path``: a kill at any moment leaves the old file or the new one, never half
of one. ``write_synced`` is the single write underneath (and what tests replace to simulate a
full disk). ``disk_error`` turns an ``OSError`` into the one-line ``TrainingError`` a run
reports, naming the folder.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from omnireid.errors import TrainingError

FULL = (errno.ENOSPC, errno.EDQUOT)


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` and flush it to disk."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_synced(Path(tmp), data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def disk_error(error: OSError, what: str, folder: str | Path, kept: str) -> TrainingError:
    """The error of a run that could not write ``what`` in ``folder``: the reason, that ``kept``
    is untouched, and how to go on."""
    reason = error.strerror or str(error)
    fix = "free some space, then" if error.errno in FULL else "fix that, then"
    return TrainingError(
        f"could not write {what} in {folder} ({reason}); {kept} untouched: {fix} run the "
        "same command to resume"
    )
