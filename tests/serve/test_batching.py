import threading
import time

import httpx
import numpy as np
import pytest

from omnireid.serve.app import create_app
from omnireid.serve.auth import ApiKeys
from omnireid.serve.batching import QueryBatcher
from omnireid.serve.faiss_store import FaissStore
from omnireid.serve.service import GalleryService, Threshold
from omnireid.serve.store import Entry, Hit
from tests.serve.conftest import LIMITS
from tests.serve.helpers import READ_KEY, WRITE_KEY, serving_in_thread

READ, WRITE = {"X-API-Key": READ_KEY}, {"X-API-Key": WRITE_KEY}


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


def test_a_cancelled_request_is_skipped_and_a_large_one_searched_alone():
    search, out = SlowSearch(), {}
    batcher = QueryBatcher(search, max_batch=4)
    threads = [submit(batcher, [0], 1, out, "first")]
    time.sleep(0.2)
    gone = batcher.submit(np.array([[7, 0.0]], np.float32), 1)
    assert gone.cancel()  # its client left before the search began
    threads += [submit(batcher, [1, 2, 3, 4, 5], 1, out, "large")]
    time.sleep(0.1)
    threads += [submit(batcher, [6], 1, out, "small")]
    time.sleep(0.2)
    search.release.set()
    for t in threads:
        t.join(10)
    # the 5-row request is over max_batch: it goes alone, the 1-row one after it
    assert [rows for rows, _ in search.calls] == [[0], [1, 2, 3, 4, 5], [6]]
    assert [row[0].entry.id for row in out["large"]] == ["1/0", "2/0", "3/0", "4/0", "5/0"]
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(np.zeros((1, 2), np.float32), 1)


def test_coroutines_waiting_together_get_their_own_answers_in_one_wake_up(monkeypatch):
    import asyncio

    search = SlowSearch()
    batcher = QueryBatcher(search)
    wakeups: list[int] = []

    async def main() -> list:
        loop = asyncio.get_running_loop()
        threadsafe = loop.call_soon_threadsafe

        def counted(callback, answers):
            wakeups.append(len(answers))
            return threadsafe(callback, answers)

        monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
        first = batcher.submit_async(np.array([[0, 0.0]], np.float32), 1)
        await asyncio.sleep(0.2)  # the first search is running (blocked)
        rows = ([1], [2, 3], [-4], [5])  # -4: refused by the search, alone
        futures = [
            batcher.submit_async(np.array([[r, 0.0] for r in x], np.float32), 2) for x in rows
        ]
        gone = batcher.submit_async(np.array([[9, 0.0]], np.float32), 1)
        gone.cancel()  # its client left while it waited
        search.release.set()
        return await asyncio.gather(first, *futures, return_exceptions=True)

    first, one, two, bad, five = asyncio.run(main())
    assert [h.entry.id for h in first[0]] == ["0/0"]
    assert [[h.entry.id for h in row] for row in two] == [["2/0", "2/1"], ["3/0", "3/1"]]
    assert [h.entry.id for h in one[0]] == ["1/0", "1/1"]
    assert [h.entry.id for h in five[0]] == ["5/0", "5/1"]
    assert isinstance(bad, ValueError)
    # the first search's answer, then the four that waited (the cancelled one never searched),
    # each batch delivered to the loop in one call
    assert wakeups == [1, 4]
    assert [rows for rows, _ in search.calls][:2] == [[0], [1, 2, 3, -4, 5]]
    batcher.close()


def axis_query(a: int, b: int, c: int, dim: int = 512) -> list[float]:
    """3 e_a + 2 e_b + e_c, normalised: it scores 3, 2 and 1 over sqrt(14) on axes a, b, c."""
    q = np.zeros(dim)
    q[[a, b, c]] = 3, 2, 1
    return (q / np.sqrt(14)).tolist()


def test_concurrent_identify_requests_get_what_each_gets_alone(toy_extractor, tmp_path):
    """Through HTTP: 12 requests sent while a search runs share the next one, and each gets
    the top 5 worked out by hand (the gallery: the first 300 unit axes, ids "e<axis>")."""
    store = FaissStore(tmp_path, {"dim": 512, "arch": toy_extractor.arch}, chunk=64)
    held, search = threading.Event(), store.search

    def first_waits(queries, k):
        held.wait(10)
        return search(queries, k)

    store.search = first_waits  # the service's batcher calls this
    service = GalleryService(store, toy_extractor, Threshold(0.5), LIMITS)
    keys = ApiKeys.from_keys([READ_KEY], [WRITE_KEY])
    axes = np.eye(300, 512)
    with serving_in_thread(create_app(service, keys)) as url:
        with httpx.Client(base_url=url, timeout=60) as http:
            for s in range(0, 300, 100):  # 4 int8 chunks of 64 rows and a tail of 44
                items = [{"feature": axes[i].tolist(), "id": f"e{i}"} for i in range(s, s + 100)]
                answer = http.post("/gallery", json={"items": items}, headers=WRITE)
                assert answer.status_code == 201
        triples = [(5 + i, 290 - 7 * i, 100 + 3 * i) for i in range(13)]
        out: dict[int, dict] = {}

        def identify(i: int) -> None:
            body = {"features": [axis_query(*triples[i])], "k": 5}
            with httpx.Client(base_url=url, timeout=60) as http:
                out[i] = http.post("/identify", json=body, headers=READ).json()

        first = threading.Thread(target=identify, args=(0,))
        first.start()
        time.sleep(0.3)  # the first search has begun and waits
        rest = [threading.Thread(target=identify, args=(i,)) for i in range(1, 13)]
        for t in rest:
            t.start()
        time.sleep(1.0)  # all twelve are waiting for the next search
        held.set()
        for t in [first, *rest]:
            t.join(30)
        alone = {}
        with httpx.Client(base_url=url, timeout=60) as http:
            for i in range(13):
                body = {"features": [axis_query(*triples[i])], "k": 5}
                alone[i] = http.post("/identify", json=body, headers=READ).json()
            counts = http.get("/stats", headers=READ).json()["counts"]
    for i, (a, b, c) in enumerate(triples):
        (result,) = out[i]["results"]
        rest_of_them = [x for x in range(300) if x not in (a, b, c)][:2]  # score 0: in order
        assert [m["id"] for m in result["matches"]] == [f"e{x}" for x in (a, b, c, *rest_of_them)]
        expected = [3 / np.sqrt(14), 2 / np.sqrt(14), 1 / np.sqrt(14), 0.0, 0.0]
        np.testing.assert_allclose([m["score"] for m in result["matches"]], expected, atol=1e-6)
        assert result["match"] == f"e{a}" and out[i]["threshold"] == 0.5
        assert out[i] == alone[i]  # the same answer, score for score
    assert counts["identified"] == 26 and counts["searches"] == 1 + 1 + 13
