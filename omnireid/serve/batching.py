"""Concurrent searches joined into one: the queries that arrive while a search runs go together
in the next one.

One exact search over a large gallery costs about as much for eight queries as for two (it is
bound by reading the gallery, which a batch reads once), so under load this multiplies
throughput; a lone request runs at once and waits for nothing. One thread of its own runs the
searches: a request hands its queries over (``submit``, a future that an event loop can await
without a thread of its own) and is answered when its batch is done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from omnireid.serve.store import Hit

Search = Callable[[np.ndarray, int], list[list[Hit]]]
# queries per search, at most (a request with more is searched alone): a batch's scores are
# (queries, gallery) float32, 26 MB for 64 queries and 100,000 entries
MAX_BATCH = 64


@dataclass(eq=False)
class _Job:
    queries: np.ndarray
    k: int
    future: Future


class QueryBatcher:
    """``batcher(queries, k)`` answers like ``search(queries, k)``, sharing store calls with
    the requests that arrive while one is running; ``submit`` is the same as a future."""

    def __init__(self, search: Search, max_batch: int = MAX_BATCH) -> None:
        self._search, self._max = search, max_batch
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self.calls = 0  # store calls made (fewer than requests under load)

    def submit(self, queries: np.ndarray, k: int) -> Future:
        """A future of ``search(queries, k)``, searched with whatever else is waiting."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the query batcher is closed")
            self._pending.append(_Job(queries, k, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="omnireid-search", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return future

    def __call__(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        return self.submit(queries, k).result()

    def close(self) -> None:
        """Finish what is waiting, then stop the search thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                batch: list[_Job] = []  # the waiting jobs, in order, up to max_batch queries
                rows = 0
                while self._pending and (
                    not batch or rows + len(self._pending[0].queries) <= self._max
                ):
                    job = self._pending.pop(0)
                    if job.future.set_running_or_notify_cancel():  # else: its client left
                        batch.append(job)
                        rows += len(job.queries)
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        self.calls += 1
        try:
            hits = self._search(np.concatenate([j.queries for j in batch]), max(j.k for j in batch))
        except BaseException as e:
            if len(batch) == 1:
                batch[0].future.set_exception(e)
                return
            for j in batch:  # whose input failed: each job alone, so errors stay its own
                self._run([j])
            return
        start = 0
        for j in batch:
            j.future.set_result([row[: j.k] for row in hits[start : start + len(j.queries)]])
            start += len(j.queries)
