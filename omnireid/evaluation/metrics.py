"""Ranking metrics: CMC rank-k, mAP and mINP under the standard re-ID protocol.

For each query, gallery entries with the query's id AND camera are removed (they are the
same view, not a cross-camera match). Queries left with no valid match are skipped and
counted. Ranks are computed over the remaining gallery in order of increasing distance
(``np.argsort``, so ties break exactly as in the reference implementation).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from omnireid.scores import CMC_RANKS as CMC_RANKS  # re-exported: evaluation's names
from omnireid.scores import RANK_KEYS as RANK_KEYS


@dataclass(frozen=True)
class RankResult:
    """``cmc[k-1]`` is the rank-k accuracy in [0, 1]; mAP and mINP in [0, 1]."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int

    def as_dict(self) -> dict[str, float]:
        """Percentages with the keys ``RANK_KEYS`` (a rank beyond the gallery left out)."""
        out = {f"rank{k}": 100.0 * float(self.cmc[k - 1]) for k in CMC_RANKS if k <= len(self.cmc)}
        out.update(mAP=100.0 * self.mAP, mINP=100.0 * self.mINP)
        return out


Matrix = np.ndarray | torch.Tensor
Ids = np.ndarray | torch.Tensor | Sequence[int]


def as_numpy(x: Ids) -> np.ndarray:
    """A tensor (detached, on the CPU), array or sequence as a NumPy array."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def rank_inputs(
    distmat: Matrix, q_pids: Ids, g_pids: Ids, q_camids: Ids, g_camids: Ids
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ranking inputs as NumPy arrays, checked to fit the ``(N, M)`` distance matrix."""
    distmat = as_numpy(distmat)
    q_pids, g_pids = as_numpy(q_pids), as_numpy(g_pids)
    q_camids, g_camids = as_numpy(q_camids), as_numpy(g_camids)
    n, m = distmat.shape
    if (len(q_pids), len(q_camids), len(g_pids), len(g_camids)) != (n, n, m, m):
        raise ValueError(
            f"distmat is {n}x{m} but got {len(q_pids)} query pids, {len(q_camids)} query camids, "
            f"{len(g_pids)} gallery pids, {len(g_camids)} gallery camids"
        )
    return distmat, q_pids, g_pids, q_camids, g_camids


@dataclass(frozen=True)
class QueryScores:
    """Per-query results of a ranking: ``valid[i]`` when query i has a cross-camera match;
    for the valid queries, in order, their AP, INP and the 1-based rank of the first match."""

    valid: np.ndarray
    ap: np.ndarray
    inp: np.ndarray
    first_rank: np.ndarray


def _chunk_scores(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    start: int,
    stop: int,
) -> QueryScores:
    """``QueryScores`` of queries ``start:stop``."""
    m = distmat.shape[1]
    order = np.argsort(distmat[start:stop], axis=1)
    # Only same-id entries matter (matches and removed same-camera views): work sparsely.
    # np.nonzero lists them grouped by query row, in rank order within a row.
    rows, cols = np.nonzero(g_pids[order] == q_pids[start:stop, None])
    removed = g_camids[order[rows, cols]] == q_camids[start + rows]
    row_first = np.searchsorted(rows, rows)  # index of each row's first same-id entry
    removed_before = np.cumsum(removed) - removed
    removed_before -= removed_before[row_first]
    match = ~removed
    rows, cols, removed_before = rows[match], cols[match], removed_before[match]
    rank = cols + 1 - removed_before  # 1-based rank among the kept gallery entries
    hits_so_far = np.arange(len(rows)) - np.searchsorted(rows, rows) + 1
    num_rel = np.bincount(rows, minlength=stop - start)
    ap = np.bincount(rows, weights=hits_so_far / rank, minlength=stop - start)
    valid = num_rel > 0
    first = np.full(stop - start, m + 1)
    np.minimum.at(first, rows, rank)
    last = np.zeros(stop - start, dtype=np.int64)
    np.maximum.at(last, rows, rank)
    return QueryScores(
        valid, ap[valid] / num_rel[valid], num_rel[valid] / last[valid], first[valid]
    )


def query_scores(
    distmat: Matrix,
    q_pids: Ids,
    g_pids: Ids,
    q_camids: Ids,
    g_camids: Ids,
    chunk_size: int = 256,
) -> QueryScores:
    """Every query's AP, INP and first-match rank under the protocol (module docstring), e.g.
    for a bootstrap over queries. ``evaluate_rank`` averages exactly these."""
    inputs = rank_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    n = inputs[0].shape[0]

    def chunk(start: int) -> QueryScores:
        return _chunk_scores(*inputs, start, min(start + chunk_size, n))

    # np.argsort releases the GIL: chunks run in parallel on the available cores.
    workers = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(chunk, range(0, n, chunk_size)))
    if not parts:
        empty = np.zeros(0)
        return QueryScores(np.zeros(0, dtype=bool), empty, empty, empty.astype(np.int64))
    return QueryScores(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("valid", "ap", "inp", "first_rank")
        )
    )


def evaluate_rank(
    distmat: Matrix,
    q_pids: Ids,
    g_pids: Ids,
    q_camids: Ids,
    g_camids: Ids,
    max_rank: int = 50,
    chunk_size: int = 256,
) -> RankResult:
    """CMC, mAP and mINP of an ``(N, M)`` query-gallery distance matrix.

    Vectorised over chunks of ``chunk_size`` queries. Raises if no query has a valid match.
    """
    scores = query_scores(distmat, q_pids, g_pids, q_camids, g_camids, chunk_size)
    n, m = len(scores.valid), np.shape(distmat)[1]
    max_rank = min(max_rank, m)
    num_valid = int(scores.valid.sum())
    if num_valid == 0:
        raise ValueError(
            "no query has a valid match in the gallery (all are same-camera or absent)"
        )
    # first_hit[r - 1]: queries whose first valid match is at rank r (r > max_rank pooled).
    first_hit = np.bincount(np.minimum(scores.first_rank, max_rank + 1) - 1, minlength=max_rank + 1)
    cmc = np.cumsum(first_hit[:max_rank]) / num_valid
    return RankResult(
        cmc,
        float(scores.ap.sum()) / num_valid,
        float(scores.inp.sum()) / num_valid,
        num_valid,
        n - num_valid,
    )


def evaluate_single_gallery_shot(
    distmat: Matrix,
    q_pids: Ids,
    g_pids: Ids,
    q_camids: Ids,
    g_camids: Ids,
    max_rank: int = 50,
    repeats: int = 10,
    seed: int = 0,
) -> RankResult:
    """CUHK03 single-gallery-shot CMC: each repeat keeps one random image per gallery id.

    CMC is averaged over ``repeats`` seeded draws; mAP and mINP are those of the full protocol.
    """
    full = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)
    distmat = as_numpy(distmat)
    q_pids, g_pids = as_numpy(q_pids), as_numpy(g_pids)
    q_camids, g_camids = as_numpy(q_camids), as_numpy(g_camids)
    rng = np.random.default_rng(seed)
    max_rank = min(max_rank, distmat.shape[1])
    first_hit_counts = np.zeros(max_rank, dtype=np.int64)  # over queries x repeats
    num_valid = 0
    for i in range(distmat.shape[0]):
        keep = ~((g_pids == q_pids[i]) & (g_camids == q_camids[i]))
        if not (keep & (g_pids == q_pids[i])).any():
            continue
        num_valid += 1
        idx = np.flatnonzero(keep)
        pids = g_pids[idx]
        for _ in range(repeats):
            picked = np.array([rng.choice(idx[pids == p]) for p in np.unique(pids)])
            ranked = g_pids[picked[np.argsort(distmat[i, picked])]]
            first = int(np.flatnonzero(ranked == q_pids[i])[0])
            if first < max_rank:
                first_hit_counts[first] += 1
    cmc = np.cumsum(first_hit_counts) / (num_valid * repeats)
    return RankResult(cmc, full.mAP, full.mINP, num_valid, distmat.shape[0] - num_valid)


def average_results(results: Sequence[RankResult]) -> RankResult:
    """Mean over the splits of a small dataset (VIPeR, GRID, CUHK01)."""
    if not results:
        raise ValueError("no results to average")
    length = min(len(r.cmc) for r in results)
    return RankResult(
        np.mean([r.cmc[:length] for r in results], axis=0),
        float(np.mean([r.mAP for r in results])),
        float(np.mean([r.mINP for r in results])),
        sum(r.num_valid_queries for r in results),
        sum(r.num_skipped_queries for r in results),
    )
