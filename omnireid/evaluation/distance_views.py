"""Views of the distances k-reciprocal re-ranking reads (``evaluation.rerank``): what it needs
of an ``(n, n)`` distance matrix, squared in float32, without materialising it.

``JointDistance`` is the joint (query + gallery) matrix of a re-ranking, assembled lazily from
its three blocks; ``SingleDistance`` is one set of samples that is its own query and gallery
(the Jaccard distance that unsupervised adaptation clusters on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class DistanceView(Protocol):
    """``n`` samples, the first ``q`` of them queries and ``g`` of them, from row
    ``gallery_offset`` on, the gallery; every accessor returns squared distances in float32."""

    n: int
    q: int
    g: int
    gallery_offset: int

    def squared_query_gallery(self, start: int, stop: int) -> np.ndarray: ...

    def squared_columns(self, start: int, stop: int) -> np.ndarray: ...

    def squared_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray: ...


@dataclass
class JointDistance:
    """Lazy view of the joint matrix ``D = [[q_q, q_g], [q_g.T, g_g]]`` of shape ``(n, n)``.

    All accessors return ``D ** 2`` in float32, squared in the inputs' common dtype.
    """

    qq: np.ndarray
    qg: np.ndarray
    gg: np.ndarray

    def __post_init__(self) -> None:
        self.q, self.g = self.qg.shape
        self.n = self.q + self.g
        self.gallery_offset = self.q  # gallery samples are rows q.. of the joint matrix
        self.dtype = np.result_type(self.qq, self.qg, self.gg)

    def _squared(self, x: np.ndarray) -> np.ndarray:
        return np.square(x.astype(self.dtype, copy=False)).astype(np.float32, copy=False)

    def squared_query_gallery(self, start: int, stop: int) -> np.ndarray:
        """``q_g[start:stop] ** 2``, float32."""
        return self._squared(self.qg[start:stop])

    def squared_columns(self, start: int, stop: int) -> np.ndarray:
        """``D[:, start:stop] ** 2`` as an ``(n, stop - start)`` float32 array."""
        q = self.q
        parts = []
        if start < q:
            end = min(stop, q)
            parts.append(np.concatenate([self.qq[:, start:end], self.qg[start:end].T], axis=0))
        if stop > q:
            begin = max(start, q) - q
            parts.append(
                np.concatenate([self.qg[:, begin : stop - q], self.gg[:, begin : stop - q]], 0)
            )
        block = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        block = block.astype(self.dtype, copy=False)  # a fresh array: square it in place
        return np.square(block, out=block).astype(np.float32, copy=False)

    def squared_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``D[rows, cols] ** 2`` elementwise, float32."""
        q = self.q
        out = np.empty(rows.shape, dtype=self.dtype)
        row_q, col_q = rows < q, cols < q
        m = row_q & col_q
        out[m] = self.qq[rows[m], cols[m]]
        m = row_q & ~col_q
        out[m] = self.qg[rows[m], cols[m] - q]
        m = ~row_q & col_q  # lower-left block is q_g transposed
        out[m] = self.qg[cols[m], rows[m] - q]
        m = ~row_q & ~col_q
        out[m] = self.gg[rows[m] - q, cols[m] - q]
        return self._squared(out)


class SingleDistance:
    """One set of samples that is its own query and gallery: the interface of
    ``JointDistance`` over a single ``(n, n)`` matrix (gallery rows start at 0)."""

    def __init__(self, d: np.ndarray) -> None:
        self.d = d
        self.n = self.q = self.g = d.shape[0]
        self.gallery_offset = 0

    def _squared(self, x: np.ndarray) -> np.ndarray:
        return np.square(x.astype(np.float64, copy=False)).astype(np.float32, copy=False)

    def squared_query_gallery(self, start: int, stop: int) -> np.ndarray:
        return self._squared(self.d[start:stop])

    def squared_columns(self, start: int, stop: int) -> np.ndarray:
        return self._squared(self.d[:, start:stop])

    def squared_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return self._squared(self.d[rows, cols])
