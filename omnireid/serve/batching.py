"""Concurrent searches joined into one: the queries that arrive while a search runs go together
in the next one.

One exact search over a large gallery costs about as much for eight queries as for two (it is
bound by reading the gallery, which a batch reads once), so under load this multiplies
throughput; a lone request runs at once and waits for nothing. One thread of its own runs the
searches: a request hands its queries over and is answered when its batch is done, as a
``concurrent.futures.Future`` (``submit``) or, from a coroutine, an ``asyncio.Future`` of the
running loop (``submit_async``). The answers of one search reach an event loop in one wake-up
(one ``call_soon_threadsafe`` per batch and loop, not per request: ~7% of the server's CPU at
~470 requests/s before).
"""

from __future__ import annotations

import asyncio
import contextlib
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
    future: Future | asyncio.Future
    loop: asyncio.AbstractEventLoop | None = None  # set: ``future`` belongs to this loop

    def live(self) -> bool:
        """False when its client left (a cancelled future); a thread's future starts running."""
        if self.loop is None:
            return self.future.set_running_or_notify_cancel()  # type: ignore[union-attr]
        return not self.future.cancelled()  # settled on its loop, which checks again


Answer = tuple[_Job, "list[list[Hit]] | None", "BaseException | None"]


def _settle(answers: list[Answer]) -> None:
    """On a job's event loop: its answer into its future, unless its client has left."""
    for job, hits, error in answers:
        if not job.future.done():
            if error is None:
                job.future.set_result(hits)
            else:
                job.future.set_exception(error)


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
        self._enqueue(_Job(queries, k, future))
        return future

    def submit_async(self, queries: np.ndarray, k: int) -> asyncio.Future:
        """``submit`` for a coroutine: an ``asyncio.Future`` of the running event loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(_Job(queries, k, future, loop))
        return future

    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the query batcher is closed")
            self._pending.append(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="omnireid-search", daemon=True
                )
                self._thread.start()
            self._cond.notify()

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
                    if job.live():  # else: its client left
                        batch.append(job)
                        rows += len(job.queries)
            if batch:
                self._deliver(self._answers(batch))

    def _answers(self, batch: list[_Job]) -> list[Answer]:
        """Each job's hits, or the error its own queries raise."""
        self.calls += 1
        try:
            hits = self._search(np.concatenate([j.queries for j in batch]), max(j.k for j in batch))
        except BaseException as e:
            if len(batch) == 1:
                return [(batch[0], None, e)]
            # whose input failed: each job alone, so errors stay its own
            return [answer for j in batch for answer in self._answers([j])]
        answers: list[Answer] = []
        start = 0
        for j in batch:
            answers.append((j, [row[: j.k] for row in hits[start : start + len(j.queries)]], None))
            start += len(j.queries)
        return answers

    @staticmethod
    def _deliver(answers: list[Answer]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Answer]] = {}
        for job, hits, error in answers:
            if job.loop is not None:
                by_loop.setdefault(job.loop, []).append((job, hits, error))
            elif error is None:
                job.future.set_result(hits)
            else:
                job.future.set_exception(error)
        for loop, theirs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: its clients are gone
                loop.call_soon_threadsafe(_settle, theirs)
