"""Progress for long loops: a live bar on a terminal, a few plain lines in a log file.

``progress(iterable, desc=...)`` wraps an iterable like ``tqdm``. When standard error is a
terminal it shows tqdm's bar; otherwise (a log file, CI, a pipe) it writes a plain line about
every ``every`` percent, but no more often than every ``interval`` seconds, and a last line when
the loop took longer than that: a long evaluation adds a dozen lines to a log instead of hundreds
of bar updates, a short loop adds none. ``enabled=False`` shows nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def _is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class _LineProgress(Generic[T]):
    """The non-terminal form: ``desc: k/N (p%) elapsed`` lines (see the module docstring)."""

    def __init__(
        self,
        iterable: Iterable[T] | None,
        desc: str,
        total: int | None,
        every: float,
        interval: float,
    ) -> None:
        self.iterable, self.desc, self.every, self.interval = iterable, desc, every, interval
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.next_mark = total, 0, every
        self.start = self.last = time.perf_counter()
        self.postfix, self.closed = "", False

    def _line(self, final: bool = False) -> None:
        now = time.perf_counter()
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = f" {self.postfix}" if self.postfix else ""
        done = " done" if final else ""
        elapsed = now - self.start
        print(f"{self.desc}: {count}{pct}{extra} {elapsed:.0f}s{done}", file=sys.stderr, flush=True)
        self.last = now

    def update(self, k: int = 1) -> None:
        self.n += k
        if not self.total or self.n >= self.total:
            return
        if 100 * self.n / self.total >= self.next_mark:
            while self.next_mark <= 100 * self.n / self.total:
                self.next_mark += self.every
            if time.perf_counter() - self.last >= self.interval:
                self._line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def close(self) -> None:
        if not self.closed and self.n and time.perf_counter() - self.start >= self.interval:
            self._line(final=True)
        self.closed = True

    def __enter__(self) -> _LineProgress[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Silent(Generic[T]):
    def __init__(self, iterable: Iterable[T] | None) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None
        return iter(self.iterable)

    def update(self, k: int = 1) -> None:
        pass

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress(
    iterable: Iterable[T] | None = None,
    *,
    desc: str = "",
    total: int | None = None,
    enabled: bool = True,
    unit: str = "it",
    every: float = 10.0,
    interval: float = 10.0,
) -> Any:
    """Iterate ``iterable`` with progress shown as the module docstring says.

    Also usable without an iterable as a context manager with ``update(k)`` (``total``
    needed for percentages). ``every`` (percent) and ``interval`` (seconds): the spacing of the
    lines when not on a terminal.
    """
    if not enabled:
        return _Silent(iterable)
    if _is_terminal():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)
    return _LineProgress(iterable, desc, total, every, interval)
