import numpy as np
import pytest

from omnireid.serve.exact import ExactSearch
from tests.serve.helpers import unit_rows


def brute_force(q: np.ndarray, rows: np.ndarray, alive: np.ndarray, k: int) -> list[list[int]]:
    """The k best row numbers of each query in float64, ties in row order."""
    scores = q.astype(np.float64) @ rows.astype(np.float64).T
    scores[:, ~alive] = -np.inf
    k = min(k, int(alive.sum()))
    return [list(np.lexsort((np.arange(len(rows)), -s))[:k]) for s in scores]


def searcher(rows: np.ndarray, chunk: int, int8: bool = True, n: int = 0) -> ExactSearch:
    """The first ``n`` (all) of ``rows``, row i under seq 100 + i (seqs are not positions)."""
    search = ExactSearch(rows.shape[1], lambda seqs: rows[seqs - 100], chunk=chunk, int8=int8)
    n = n or len(rows)
    search.add(np.arange(100, 100 + n), rows[:n])
    return search


def test_the_axes_rank_as_worked_out_by_hand():
    # rows: the first 40 unit axes of R^64; the query 3 e5 + 2 e9 + e1 (normalised) scores
    # 3/sqrt(14), 2/sqrt(14), 1/sqrt(14) on rows 5, 9, 1 and 0 on every other row, whose
    # ties go in enrolment order: rows 0, 2, 3
    rows = np.eye(40, 64, dtype=np.float32)
    q = np.zeros((1, 64), np.float32)
    q[0, [5, 9, 1]] = 3, 2, 1
    q /= np.linalg.norm(q)
    for search in (searcher(rows, chunk=8), searcher(rows, chunk=8, int8=False)):
        seqs, scores = search.search(q, 6)
        assert list(seqs[0] - 100) == [5, 9, 1, 0, 2, 3]
        np.testing.assert_allclose(scores[0], np.array([3, 2, 1, 0, 0, 0]) / np.sqrt(14))


@pytest.mark.parametrize("dim", [16, 512])
def test_every_query_gets_the_exact_top_k_with_rows_removed_and_repacked(dim):
    rows = unit_rows(790, dim, seed=dim)
    rows[[5, 9]] = rows[7]  # exact ties: enrolment order
    search = searcher(rows, chunk=64, n=700)
    assert search.int8  # the int8 first pass is what is checked here
    alive = np.ones(len(rows), bool)
    for r in np.random.default_rng(1).choice(700, 300, replace=False):
        search.remove(int(r) + 100)  # enough in some chunks that they are repacked
        alive[r] = False
    search.add(np.arange(800, 890), rows[700:])  # new rows: a new chunk, then a tail
    assert len(search) == alive.sum() == 490
    queries = np.concatenate([unit_rows(20, dim, seed=dim + 2), rows[[7, 700, 3]]])
    for k in (1, 10, 100):
        seqs, scores = search.search(queries, k)
        assert [list(s - 100) for s in seqs] == brute_force(queries, rows, alive, k)
        for q, found, got in zip(queries, seqs, scores, strict=True):
            np.testing.assert_allclose(got, rows[found - 100].astype(np.float64) @ q, rtol=1e-12)


def test_k_over_the_gallery_size_returns_every_row_and_an_empty_search_nothing():
    rows = unit_rows(5, 32, seed=3)
    search = searcher(rows, chunk=4)
    seqs, _ = search.search(rows[:2], 50)
    assert [sorted(s - 100) for s in seqs] == [[0, 1, 2, 3, 4]] * 2
    for seq in range(100, 105):
        search.remove(seq)
    seqs, scores = search.search(rows[:2], 3)
    assert [len(s) for s in seqs] == [len(s) for s in scores] == [0, 0]


def test_a_query_alone_scores_as_in_any_batch():
    rows = unit_rows(300, 64, seed=4)
    search = searcher(rows, chunk=32)
    queries = unit_rows(9, 64, seed=5)
    together, together_scores = search.search(queries, 7)
    for i, q in enumerate(queries):
        alone, alone_scores = search.search(q[None], 7)
        assert list(alone[0]) == list(together[i])
        assert list(alone_scores[0]) == list(together_scores[i])  # bit for bit


def test_small_chunks_are_merged_and_a_bulk_load_packs_large_ones():
    # chunk 8, MERGE 4: rows enrolled 3 at a time fill 8-row chunks, and every 4 of those
    # become one 32-row chunk; 70 rows added at once go 32 + 32 straight away, 6 in the tail
    from omnireid.serve.exact import MERGE

    assert MERGE == 4
    rows = unit_rows(200, 24, seed=6)
    grown = ExactSearch(24, lambda seqs: rows[seqs - 100], chunk=8)
    for start in range(0, 99, 3):
        grown.add(np.arange(100 + start, 103 + start), rows[start : start + 3])
    # 99 rows: 12 full chunks of 8 (3 merges of 4 -> 3 chunks of 32), 3 rows in the tail
    assert sorted(len(c.seqs) for c in grown._chunks) == [32, 32, 32]
    loaded = searcher(rows[:70], chunk=8)
    assert [len(c.seqs) for c in loaded._chunks] == [32, 32]
    alive = np.zeros(len(rows), bool)
    alive[:99] = True
    for r in [*range(9), 40, 97]:  # 9 of a 32-row chunk: masked, then repacked; the tail
        grown.remove(100 + r)
        alive[r] = False
    assert sorted(len(c.seqs) for c in grown._chunks) == [23, 32, 32]
    queries = np.concatenate([unit_rows(10, 24, seed=7), rows[[3, 50]]])
    for k in (1, 5, 40):
        seqs, _ = grown.search(queries, k)
        assert [list(s - 100) for s in seqs] == brute_force(queries, rows, alive, k)
