"""Concurrent searches joined into one: the queries that arrive while a search runs go together
in the next one.

One exact search over a large gallery costs about as much for eight queries as for two (it is
bound by reading the gallery, which a batch reads once), so under load this multiplies
throughput; a lone request runs at once and waits for nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from omnireid.serve.store import Hit

Search = Callable[[np.ndarray, int], list[list[Hit]]]


@dataclass(eq=False)
class _Job:
    queries: np.ndarray
    k: int
    result: list[list[Hit]] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class QueryBatcher:
    """``batcher(queries, k)`` answers like ``search(queries, k)``, sharing store calls with
    the requests that arrive while one is running."""

    def __init__(self, search: Search) -> None:
        self._search = search
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._busy = False
        self.calls = 0  # store calls made (fewer than requests under load)

    def __call__(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        job = _Job(queries, k)
        with self._cond:
            self._pending.append(job)
            while self._busy and not job.done:
                self._cond.wait()
            if not job.done:  # no search running: this thread runs every waiting job
                batch, self._pending, self._busy = self._pending, [], True
        if not job.done:
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _run(self, batch: list[_Job]) -> None:
        self.calls += 1
        try:
            hits = self._search(np.concatenate([j.queries for j in batch]), max(j.k for j in batch))
        except BaseException as e:
            if len(batch) == 1:
                batch[0].error, batch[0].done = e, True
                return
            for j in batch:  # whose input failed: each job alone, so errors stay its own
                self._run([j])
            return
        start = 0
        for j in batch:
            j.result = [row[: j.k] for row in hits[start : start + len(j.queries)]]
            j.done, start = True, start + len(j.queries)
