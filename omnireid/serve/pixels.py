"""Decoded pixels held by the server at once, bounded; and their memory given back after.

A request's images are a few kilobytes each on the wire (a one-colour 4096x4096 PNG is ~50
KiB) but 3 bytes a pixel decoded, more while a 16-bit or palette image is converted. The
limits bound the pixels of one request (``Limits.max_request_pixels``); ``PixelBudget`` bounds
the pixels decoded at once across concurrent requests to the same number, so memory does not
grow with the number of clients: a request waits (first come, first served) until the pixels
it needs are free. ``release_free_memory`` then hands the freed pages back to the system
(glibc keeps freed heap memory otherwise, the more so as ``runtime.tune_allocator`` raises its
trim threshold for speed): a burst of large images does not leave the server larger for good.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class PixelBudget:
    """At most ``capacity`` pixels held at once by the ``hold`` blocks of all threads."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._cond = threading.Condition()
        self._queue: deque[int] = deque()
        self._tickets = itertools.count()

    @property
    def waiting(self) -> int:
        """How many ``hold`` calls wait for their turn."""
        with self._cond:
            return len(self._queue)

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Wait until ``pixels`` (at most ``capacity``) are free, in arrival order; hold them
        inside the block."""
        if pixels > self.capacity:
            raise ValueError(f"{pixels} pixels asked of a budget of {self.capacity}")
        with self._cond:
            ticket = next(self._tickets)
            self._queue.append(ticket)
            while self._queue[0] != ticket or self.used + pixels > self.capacity:
                self._cond.wait()
            self._queue.popleft()
            self.used += pixels
            self._cond.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._cond:
                self.used -= pixels
                self._cond.notify_all()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # glibc; absent from musl
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Give the free pages of every malloc arena back to the system (glibc's
    ``malloc_trim(0)``); False where the C library has no such call."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
