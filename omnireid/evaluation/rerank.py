"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017).

The algorithm works on the joint (query + gallery) set of ``n = q + g`` samples:

1. Each sample's ``k1`` nearest neighbours (itself included) give its *k-reciprocal* set: the
   neighbours that also count the sample among their own ``k1`` nearest.
2. The set is expanded: for each member ``c``, if more than 2/3 of ``c``'s own
   ``round(k1 / 2)``-reciprocal set lies inside the sample's set, that smaller set is added.
3. The expanded set is encoded as a sparse vector ``V[i]`` with Gaussian-kernel weights
   ``exp(-d(i, j))`` over its members, normalised to sum to one.
4. Local query expansion replaces ``V[i]`` with the mean of the vectors of the ``k2`` nearest
   neighbours of ``i``.
5. The Jaccard distance between ``V[query]`` and ``V[gallery]`` is
   ``1 - sum(min) / sum(max)``, where ``sum(max) = 2 - sum(min)`` because rows sum to one; it
   is computed through an inverted (column) index of the gallery vectors.
6. The result is ``(1 - lambda) * jaccard + lambda * original``.

Numerics follow the widely used implementation of the paper (the one shipped with
``torchreid``) so that results agree with it: the input distances are squared once more, the
joint matrix is divided by its per-column maximum and transposed (so row ``i`` holds column
``i`` of the joint matrix scaled by that column's maximum), and that float32 matrix is used
both for ranking and for the kernel weights. Tied distances rank by index (a stable sort);
the reference's default ``argsort`` orders ties arbitrarily, and its result depends on that
order, so the two agree on inputs with ties only when the reference sorts stably too.

Unlike that implementation, nothing of size ``n x n`` is ever materialised: neighbours come from
a column-blocked top-k, ``V`` is stored as sparse rows, and the Jaccard term is accumulated in
query chunks, so peak memory is dominated by the caller's own input matrices.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from omnireid.evaluation.distance_views import DistanceView, JointDistance, SingleDistance
from omnireid.evaluation.metrics import as_numpy

__all__ = ["jaccard_distance", "rerank"]

# Columns of the joint distance matrix processed per block when ranking neighbours.
_RANK_BLOCK = 512
# Rows processed per block when building the k-reciprocal sets.
_EXPAND_BLOCK = 2048
# Upper bound on the number of (value, index) pairs materialised at once in the sparse steps.
_PAIR_BUDGET = 4_000_000


def rerank(
    q_g_dist: np.ndarray | torch.Tensor,
    q_q_dist: np.ndarray | torch.Tensor,
    g_g_dist: np.ndarray | torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """Re-rank query-gallery distances with k-reciprocal encoding.

    Args:
        q_g_dist: query-gallery distances, shape ``(q, g)``.
        q_q_dist: query-query distances, shape ``(q, q)``.
        g_g_dist: gallery-gallery distances, shape ``(g, g)``.
        k1: neighbourhood size of the k-reciprocal sets (paper: 20).
        k2: neighbourhood size of the local query expansion (paper: 6; 1 disables it).
        lambda_value: weight of the original distance in the result (paper: 0.3).

    Returns:
        The re-ranked ``(q, g)`` distance matrix, float32.
    """
    dist = JointDistance(*_validate(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value))
    n = dist.n
    k_full = min(k1 + 1, n)
    k_half = min(round(k1 / 2) + 1, n)  # rounds half to even, like numpy.around
    k_qe = min(k2, n)

    ranks, colmax = _nearest_neighbours(dist, max(k_full, k_qe))
    indptr, indices = _expanded_sets(ranks[:, :k_full], ranks[:, :k_half])
    vectors = _encode(dist, colmax, indptr, indices)
    if k_qe > 1:
        vectors = _query_expansion(vectors, ranks[:, :k_qe])
    del ranks
    return _combine(dist, colmax, vectors, lambda_value)


def jaccard_distance(dist: np.ndarray | torch.Tensor, k1: int = 30, k2: int = 6) -> np.ndarray:
    """The k-reciprocal Jaccard distance among one set of ``n`` samples, ``(n, n)`` float32.

    ``dist``: the samples' ``(n, n)`` pairwise distances (e.g. Euclidean distances of their
    L2-normalised features). The same steps as ``rerank`` on a set that is its own query and
    gallery, without blending in the original distance: the distance clustering-based
    unsupervised re-ID methods cluster on (k1 30, k2 6 there). 0 on the diagonal.
    """
    d = as_matrix(dist, "dist")
    if d.shape[0] != d.shape[1] or d.shape[0] < 2:
        raise ValueError(f"dist must be a square matrix of at least 2 samples, got {d.shape}")
    _check_parameters(k1, k2, 0.0)
    single = SingleDistance(d)
    n = single.n
    k_full, k_half, k_qe = min(k1 + 1, n), min(round(k1 / 2) + 1, n), min(k2, n)
    ranks, colmax = _nearest_neighbours(single, max(k_full, k_qe))
    indptr, indices = _expanded_sets(ranks[:, :k_full], ranks[:, :k_half])
    vectors = _encode(single, colmax, indptr, indices)
    if k_qe > 1:
        vectors = _query_expansion(vectors, ranks[:, :k_qe])
    del ranks
    out = _combine(single, colmax, vectors, 0.0)
    np.fill_diagonal(out, 0.0)
    return out


# --------------------------------------------------------------------------------------------
# Inputs


def as_matrix(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    """Return ``x`` as a 2-D floating numpy array."""
    x = as_numpy(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x  # finiteness is checked while ranking, without an extra pass over the input


def _validate(
    q_g_dist: np.ndarray | torch.Tensor,
    q_q_dist: np.ndarray | torch.Tensor,
    g_g_dist: np.ndarray | torch.Tensor,
    k1: int,
    k2: int,
    lambda_value: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes and parameters; return ``(q_q, q_g, g_g)`` as numpy arrays."""
    qg = as_matrix(q_g_dist, "q_g_dist")
    qq = as_matrix(q_q_dist, "q_q_dist")
    gg = as_matrix(g_g_dist, "g_g_dist")
    q, g = qg.shape
    if q == 0 or g == 0:
        raise ValueError(f"q_g_dist must have at least one query and one gallery, got {qg.shape}")
    if qq.shape != (q, q):
        raise ValueError(f"q_q_dist must have shape {(q, q)} to match q_g_dist, got {qq.shape}")
    if gg.shape != (g, g):
        raise ValueError(f"g_g_dist must have shape {(g, g)} to match q_g_dist, got {gg.shape}")
    _check_parameters(k1, k2, lambda_value)
    return qq, qg, gg


def _check_parameters(k1: int, k2: int, lambda_value: float) -> None:
    for name, k in (("k1", k1), ("k2", k2)):
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"{name} must be a positive integer, got {k!r}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must lie in [0, 1], got {lambda_value}")


# --------------------------------------------------------------------------------------------
# Steps


def _nearest_neighbours(dist: DistanceView, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` neighbours of every sample under the normalised distance.

    Row ``i`` of the normalised matrix is ``D[:, i] ** 2 / max(D[:, i] ** 2)``. Neighbours are
    ordered by ascending distance, ties by ascending index (a stable sort), found without
    sorting full rows.

    Returns:
        ``(ranks, colmax)``: int32 ``(n, k)`` neighbour indices and float32 ``(n,)`` maxima.
    """
    n = dist.n
    ranks = np.empty((n, k), dtype=np.int32)
    colmax = np.empty(n, dtype=np.float32)
    index = np.arange(n, dtype=np.int64)
    for start in range(0, n, _RANK_BLOCK):
        stop = min(start + _RANK_BLOCK, n)
        block = dist.squared_columns(start, stop)
        block_max = block.max(axis=0)  # NaN if the block holds one
        if not np.isfinite(block_max).all():
            raise ValueError("distances must be finite (and their squares finite in float32)")
        if (block_max == 0).any():
            raise ValueError("a sample has zero distance to every other sample; cannot normalise")
        colmax[start:stop] = block_max
        block /= block_max  # columns of the joint matrix are rows of the normalised one
        # Non-negative float32 values order like their bit patterns, so (value bits, index)
        # packed into one int64 gives a total order equal to a stable sort by value.
        keys = np.empty((stop - start, n), dtype=np.int64)
        keys[:] = block.view(np.int32).T
        del block
        keys <<= 32
        keys |= index
        if k < n:
            keys = np.partition(keys, k - 1, axis=1)[:, :k]
        keys.sort(axis=1)
        ranks[start:stop] = keys & 0xFFFFFFFF
    return ranks, colmax


def _reciprocal_mask(ranks: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``mask[b, t]``: whether ``rows[b]`` is among the neighbours of its ``t``-th neighbour."""
    forward = ranks[rows]
    backward = ranks[forward]
    return (backward == rows[:, None, None]).any(axis=2)


def _expanded_sets(full: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expanded k-reciprocal set of every sample, as CSR ``(indptr, indices)``.

    Args:
        full: ``(n, k1 + 1)`` nearest neighbours.
        half: ``(n, round(k1 / 2) + 1)`` nearest neighbours.
    """
    n = full.shape[0]
    half_mask = np.concatenate(
        [
            _reciprocal_mask(half, np.arange(s, min(s + _EXPAND_BLOCK, n)))
            for s in range(0, n, _EXPAND_BLOCK)
        ]
    )
    counts = np.empty(n, dtype=np.int64)
    chunks = []
    for start in range(0, n, _EXPAND_BLOCK):
        rows = np.arange(start, min(start + _EXPAND_BLOCK, n))
        forward = full[rows]  # (b, kf)
        recip = _reciprocal_mask(full, rows)  # (b, kf)
        cand_sets = half[forward]  # (b, kf, kh): each candidate's neighbours
        cand_mask = half_mask[forward]  # ... and which of them are its reciprocal ones
        # members of each candidate's set that also lie in this sample's reciprocal set
        inside = (cand_sets[..., None] == forward[:, None, None, :]) & recip[:, None, None, :]
        overlap = (inside.any(axis=3) & cand_mask).sum(axis=2)
        size = cand_mask.sum(axis=2)
        accept = recip & (3 * overlap > 2 * size)  # overlap > 2/3 * size, exactly
        members = np.concatenate(
            [
                np.where(recip, forward, n),
                np.where(accept[..., None] & cand_mask, cand_sets, n).reshape(len(rows), -1),
            ],
            axis=1,
        )
        members.sort(axis=1)
        keep = members < n
        keep[:, 1:] &= members[:, 1:] != members[:, :-1]
        counts[rows] = keep.sum(axis=1)
        chunks.append(members[keep].astype(np.int32))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return indptr, np.concatenate(chunks)


@dataclass
class _SparseRows:
    """CSR matrix of shape ``(n, n)`` with float32 values and sorted column indices per row."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def row_ids(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))


def _ragged_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for each ``(s, l)``."""
    ends = np.cumsum(lengths)
    offsets = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(ends[-1] if len(ends) else 0) + offsets


def _budget_chunks(cost: np.ndarray) -> list[tuple[int, int]]:
    """Split ``range(len(cost))`` into consecutive chunks whose summed cost fits the budget."""
    bounds = [0]
    total = 0
    for i, c in enumerate(cost.tolist()):
        if total and total + c > _PAIR_BUDGET:
            bounds.append(i)
            total = 0
        total += c
    bounds.append(len(cost))
    return list(itertools.pairwise(bounds))


def _encode(
    dist: DistanceView, colmax: np.ndarray, indptr: np.ndarray, indices: np.ndarray
) -> _SparseRows:
    """Gaussian-kernel weights ``exp(-d(i, j))`` over each set, normalised to sum to one."""
    n = dist.n
    vectors = _SparseRows(indptr, indices, np.empty(len(indices), dtype=np.float32))
    rows = vectors.row_ids
    # normalised distance of row i, column j is D[j, i] ** 2 / colmax[i]
    weights = np.exp(-(dist.squared_at(indices, rows) / colmax[rows]))
    sums = np.bincount(rows, weights=weights, minlength=n).astype(np.float32)
    vectors.data[:] = weights / sums[rows]
    return vectors


def _query_expansion(vectors: _SparseRows, neighbours: np.ndarray) -> _SparseRows:
    """Replace each row by the mean of the rows of its ``k2`` nearest neighbours."""
    n, k = neighbours.shape
    lengths = np.diff(vectors.indptr)
    cost = lengths[neighbours].sum(axis=1)
    counts, indices, data = [], [], []
    for start, stop in _budget_chunks(cost):
        src = neighbours[start:stop].ravel()
        dst = np.repeat(np.arange(start, stop, dtype=np.int64), k)
        pos = _ragged_arange(vectors.indptr[src], lengths[src])
        keys = np.repeat(dst, lengths[src]) * n + vectors.indices[pos]
        unique, inverse = np.unique(keys, return_inverse=True)
        sums = np.bincount(inverse.ravel(), weights=vectors.data[pos])
        counts.append(np.bincount(unique // n - start, minlength=stop - start))
        indices.append((unique % n).astype(np.int32))
        data.append((sums / k).astype(np.float32))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    return _SparseRows(indptr, np.concatenate(indices), np.concatenate(data))


def _combine(
    dist: DistanceView, colmax: np.ndarray, vectors: _SparseRows, lambda_value: float
) -> np.ndarray:
    """Jaccard distance of query rows to gallery rows, blended with the original distance."""
    q, g, n = dist.q, dist.g, dist.n
    # inverted index: for each column, the gallery rows (0-based) holding it, and their values
    rows = vectors.row_ids
    first = dist.gallery_offset
    in_gallery = (rows >= first) & (rows < first + g)
    g_rows = rows[in_gallery] - first
    g_cols = vectors.indices[in_gallery]
    order = np.argsort(g_cols, kind="stable")
    g_rows, g_vals = g_rows[order], vectors.data[in_gallery][order]
    col_len = np.bincount(g_cols, minlength=n)
    col_ptr = np.concatenate([[0], np.cumsum(col_len)])

    # per query: pairs to visit plus the dense output row it fills
    end = vectors.indptr[q]
    pairs = np.bincount(rows[:end], weights=col_len[vectors.indices[:end]], minlength=q)
    cost = pairs.astype(np.int64) + g
    del rows, in_gallery, g_cols, order
    out = np.empty((q, g), dtype=np.float32)
    for start, stop in _budget_chunks(cost):
        lo, hi = vectors.indptr[start], vectors.indptr[stop]
        cols, vals = vectors.indices[lo:hi], vectors.data[lo:hi]
        local = np.repeat(np.arange(stop - start), np.diff(vectors.indptr[start : stop + 1]))
        lengths = col_len[cols]
        pos = _ragged_arange(col_ptr[cols], lengths)
        shared = np.minimum(np.repeat(vals, lengths), g_vals[pos])
        cell = np.repeat(local, lengths) * g + g_rows[pos]
        inter = np.bincount(cell, weights=shared, minlength=(stop - start) * g)
        del pos, shared, cell
        inter = inter.reshape(stop - start, g).astype(np.float32)
        # out = (1 - lambda) * (1 - inter / (2 - inter)) + lambda * original, in place
        chunk = out[start:stop]
        np.subtract(2, inter, out=chunk)
        np.divide(inter, chunk, out=chunk)
        np.subtract(1, chunk, out=chunk)
        chunk *= 1 - lambda_value
        del inter
        if lambda_value:
            original = dist.squared_query_gallery(start, stop)
            original /= colmax[start:stop, None]
            original *= lambda_value
            chunk += original
    return out
