"""What a gallery index holds and answers: its per-item metadata, a search's hits, its FAISS
parameters and the names of its kinds and FAISS metrics (``deploy.index.GalleryIndex`` uses
them; they are importable from there too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import numpy as np

from omnireid.deploy.index_file import FAISS_METRICS

KINDS = ("flat", "ivf", "hnsw")
METRICS = FAISS_METRICS  # its old name
Kind = Literal["flat", "ivf", "hnsw"]
FaissMetric = Literal["ip", "l2"]
IndexMetric = FaissMetric  # its old name


@dataclass
class Metadata:
    """Per-item metadata; ``pids``/``camids`` -1 and ``timestamps`` NaN when unknown."""

    paths: list[str] = field(default_factory=list)
    pids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    camids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    timestamps: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))

    def extend(self, paths: list[str], pids: Any, camids: Any, timestamps: Any) -> None:
        n = len(paths)
        cols = {"pids": pids, "camids": camids, "timestamps": timestamps}
        fill = {"pids": -1, "camids": -1, "timestamps": np.nan}
        dtypes = {"pids": np.int64, "camids": np.int64, "timestamps": np.float64}
        for name, values in cols.items():
            arr = np.full(n, fill[name], dtypes[name]) if values is None else np.asarray(values)
            if arr.shape != (n,):
                raise ValueError(f"{name} must have one entry per feature ({n}), got {arr.shape}")
            setattr(self, name, np.concatenate([getattr(self, name), arr.astype(dtypes[name])]))
        self.paths.extend(str(p) for p in paths)


@dataclass(frozen=True)
class SearchResult:
    """Top-k hits of ``Q`` queries: ``(Q, k)`` scores, gallery indices (-1 = no hit), metadata.

    ``higher_is_better`` is True for ``ip`` scores, False for ``l2`` and re-ranked distances.
    """

    scores: np.ndarray
    indices: np.ndarray
    paths: list[list[str]]
    pids: np.ndarray
    camids: np.ndarray
    timestamps: np.ndarray
    higher_is_better: bool


class IndexParams(TypedDict):
    """The FAISS parameters of a ``GalleryIndex`` (``nlist``: None until an ivf index sets it)."""

    nlist: int | None
    nprobe: int
    hnsw_m: int
    ef_construction: int
    ef_search: int
