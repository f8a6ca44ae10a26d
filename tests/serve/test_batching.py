import threading
import time

import numpy as np
import pytest

from omnireid.serve.batching import QueryBatcher
from omnireid.serve.store import Entry, Hit


class SlowSearch:
    """A store search whose first call waits for ``release``; records each call's rows and k.
    Row ``q`` answers ``k`` hits named ``<q[0]>/<rank>``; a negative q[0] is refused."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[tuple[list[int], int]] = []

    def __call__(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        if not self.calls:
            self.release.wait(10)
        self.calls.append(([int(q[0]) for q in queries], k))
        if (queries[:, 0] < 0).any():
            raise ValueError("negative query")
        return [[Hit(Entry(f"{int(q[0])}/{r}"), 1.0 - r / 10) for r in range(k)] for q in queries]


def submit(batcher, rows: list[int], k: int, out: dict, key: str) -> threading.Thread:
    def work() -> None:
        try:
            out[key] = batcher(np.array([[r, 0.0] for r in rows], np.float32), k)
        except ValueError as e:
            out[key] = e

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_requests_arriving_during_a_search_share_the_next_one():
    search, out = SlowSearch(), {}
    batcher = QueryBatcher(search)
    threads = [submit(batcher, [0], 2, out, "first")]
    time.sleep(0.2)  # the first search is running (blocked)
    threads += [submit(batcher, [10 * i + 1, 10 * i + 2], i + 1, out, f"r{i}") for i in range(4)]
    time.sleep(0.2)
    search.release.set()
    for t in threads:
        t.join(10)
    # the 4 requests that waited went in one call of their 8 rows, at the largest k
    assert [(len(rows), k) for rows, k in search.calls] == [(1, 2), (8, 4)]
    assert [h.entry.id for h in out["first"][0]] == ["0/0", "0/1"]
    for i in range(4):  # each request gets its own rows, cut to its own k
        assert [[h.entry.id for h in row] for row in out[f"r{i}"]] == [
            [f"{10 * i + q}/{r}" for r in range(i + 1)] for q in (1, 2)
        ]
    assert batcher.calls == 2


def test_a_failing_request_does_not_fail_the_ones_batched_with_it():
    search, out = SlowSearch(), {}
    batcher = QueryBatcher(search)
    threads = [submit(batcher, [0], 1, out, "first")]
    time.sleep(0.2)
    threads += [submit(batcher, [5], 1, out, "good"), submit(batcher, [-1], 1, out, "bad")]
    time.sleep(0.2)
    search.release.set()
    for t in threads:
        t.join(10)
    assert isinstance(out["bad"], ValueError)
    assert out["good"][0][0].entry.id == "5/0"
    with pytest.raises(ValueError, match="negative"):
        batcher(np.array([[-3, 0.0]], np.float32), 1)
