"""Gallery index: features extracted at the camera, matched centrally with FAISS.

A ``GalleryIndex`` holds ``(N, D)`` float32 features (L2-normalised by default) with per-item
metadata (image path, person id, camera id, timestamp; -1 / NaN when unknown) and answers
top-k queries. Kinds: ``flat`` (exact, the default), ``ivf`` (inverted lists; ``nlist`` cells,
``nprobe`` visited per query) and ``hnsw`` (graph; ``M`` links, ``ef_search`` beam). FAISS
metrics (``faiss_metric``; ``metric`` is its deprecated name, and the header's key):
``ip`` (inner product = cosine similarity on normalised features, higher is better) or ``l2``
(squared Euclidean distance, lower is better).

On disk an index is a directory (``omnireid.deploy.index_file``: checksummed header, FAISS
file, metadata without pickle); ``GalleryIndex.load`` refuses corrupt or unverifiable files,
other formats and indexes built for another feature dimension or architecture. Camera ids are
0-based (format 2; a format-1 index, whose header had no checksum, is refused: rebuild it).
``index_image_folder`` stores absolute image paths, so an index works from any working
directory and after the index folder moves.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from omnireid.data.images import list_images, parse_market_name
from omnireid.deploy.index_file import (
    FAISS_METRICS,
    header_spec,
    read_header,
    read_index_dir,
    write_index_dir,
)
from omnireid.deploy.index_records import (  # noqa: F401  (importable from here as before)
    KINDS,
    METRICS,
    FaissMetric,
    IndexMetric,
    IndexParams,
    Kind,
    Metadata,
    SearchResult,
)
from omnireid.deprecation import warn_renamed
from omnireid.errors import IndexFileError
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import l2_normalize


class GalleryIndex:
    """FAISS-backed top-k search over ``(N, D)`` gallery features with metadata.

    ``nlist`` (ivf) defaults to ``4 * sqrt(N)`` of the first ``add`` batch, which also trains
    the coarse quantiser, so an IVF index should get a representative first batch.
    """

    def __init__(
        self,
        dim: int,
        *,
        kind: Kind = "flat",
        faiss_metric: FaissMetric = "ip",
        normalize: bool = True,
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_construction: int = 40,
        ef_search: int = 64,
        spec: ModelSpec | None = None,
        extra: dict | None = None,
        metric: FaissMetric | None = None,
    ) -> None:
        if metric is not None:  # the deprecated name of faiss_metric
            warn_renamed("GalleryIndex(metric=...)", "faiss_metric")
            faiss_metric = metric
        if kind not in KINDS:
            raise ValueError(f"unknown index kind {kind!r}; expected one of {KINDS}")
        if faiss_metric not in FAISS_METRICS:
            raise ValueError(
                f"unknown faiss_metric {faiss_metric!r}; expected one of {FAISS_METRICS}"
            )
        if dim < 1:
            raise ValueError(f"feature dimension must be positive, got {dim}")
        if hnsw_m < 2 or nprobe < 1 or ef_construction < 1 or ef_search < 1:  # FAISS aborts
            raise ValueError(
                f"index parameters out of range: hnsw_m {hnsw_m} (>= 2), nprobe {nprobe}, "
                f"ef_construction {ef_construction}, ef_search {ef_search} (>= 1)"
            )
        if nlist is not None and nlist < 1:
            raise ValueError(f"nlist must be >= 1, got {nlist}")
        self.dim, self.kind, self.normalize = int(dim), kind, normalize
        self.faiss_metric: FaissMetric = faiss_metric
        self.params = IndexParams(
            nlist=nlist,
            nprobe=nprobe,
            hnsw_m=hnsw_m,
            ef_construction=ef_construction,
            ef_search=ef_search,
        )
        self.spec = spec  # the model whose features these are (None: unknown)
        self.extra = dict(extra or {})
        self.meta = Metadata()
        self._index: faiss.Index | None = None if kind == "ivf" else self._new_index(0)

    @property
    def arch(self) -> str | None:
        return None if self.spec is None else self.spec.arch

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of the model's input (None when its spec does not say)."""
        if self.spec is None or self.spec.preprocessing is None:
            return None
        return self.spec.preprocessing.input_size

    @property
    def image_size(self) -> tuple[int, int] | None:
        """Deprecated name of ``input_size``."""
        warn_renamed("GalleryIndex.image_size", "GalleryIndex.input_size")
        return self.input_size

    # ---------------------------------------------------------------------------------------
    # building

    @property
    def metric(self) -> FaissMetric:
        """Deprecated name of ``faiss_metric``."""
        warn_renamed("GalleryIndex.metric", "GalleryIndex.faiss_metric")
        return self.faiss_metric

    def _faiss_metric_type(self) -> int:
        return faiss.METRIC_INNER_PRODUCT if self.faiss_metric == "ip" else faiss.METRIC_L2

    def _new_index(self, n: int) -> faiss.Index:
        p, metric = self.params, self._faiss_metric_type()
        if self.kind == "flat":
            return (
                faiss.IndexFlatIP(self.dim)
                if self.faiss_metric == "ip"
                else faiss.IndexFlatL2(self.dim)
            )
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, p["hnsw_m"], metric)
            index.hnsw.efConstruction = p["ef_construction"]
            return index
        # 4 sqrt(N) cells, at most N / 39 so that k-means has enough points per centroid
        nlist = p["nlist"] or max(1, min(round(4 * math.sqrt(n)), n // 39))
        if nlist > n:
            raise ValueError(f"ivf needs at least nlist={nlist} features to train, got {n}")
        p["nlist"] = nlist
        return faiss.IndexIVFFlat(faiss.IndexFlat(self.dim, metric), self.dim, nlist, metric)

    def _prepare(self, feats: Any, what: str) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(feats, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{what} must be (N, {self.dim}), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        if self.normalize and len(x) and not np.abs(x).max(axis=1).all():
            raise ValueError(f"{what} contain an all-zero vector, which has no direction (cosine)")
        if self.normalize:
            x = l2_normalize(x)
        return x

    def add(
        self,
        feats: Any,
        paths: list[str],
        pids: Any = None,
        camids: Any = None,
        timestamps: Any = None,
    ) -> None:
        """Append ``(N, D)`` features and their N paths (and optional pids/camids/timestamps)."""
        x = self._prepare(feats, "features")
        if len(paths) != len(x):
            raise ValueError(f"got {len(x)} features but {len(paths)} paths")
        if self._index is None:  # ivf: train the coarse quantiser on the first batch
            self._index = self._new_index(len(x))
            # k-means on at most 64 points per cell: enough for the coarse quantiser, and
            # 4x cheaper than faiss's own cap of 256 on a 1M gallery
            nlist = self.params["nlist"]
            assert nlist is not None  # _new_index set it
            take = np.random.default_rng(0).permutation(len(x))[: 64 * nlist]
            sample = x[np.sort(take)]
            self._index.train(sample)
        self.meta.extend(paths, pids, camids, timestamps)
        self._index.add(x)

    @classmethod
    def build(cls, feats: Any, paths: list[str], **options: Any) -> GalleryIndex:
        """Index ``(N, D)`` features in one go; ``options`` as for the constructor and ``add``."""
        meta = {k: options.pop(k, None) for k in ("pids", "camids", "timestamps")}
        x = np.asarray(feats)
        if x.ndim != 2:
            raise ValueError(f"features must be (N, D), got shape {x.shape}")
        index = cls(x.shape[1], **options)
        index.add(x, paths, **meta)
        return index

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    # ---------------------------------------------------------------------------------------
    # searching

    def _apply_search_params(self) -> None:
        if self.kind == "ivf" and self._index is not None:
            cast(faiss.IndexIVF, self._index).nprobe = self.params["nprobe"]
        elif self.kind == "hnsw":
            cast(faiss.IndexHNSW, self._index).hnsw.efSearch = self.params["ef_search"]

    def features(self, indices: np.ndarray) -> np.ndarray:
        """The stored (normalised) features of the given gallery rows, ``(len(indices), D)``."""
        assert self._index is not None  # built in __init__, or an ivf one by its first add
        if self.kind == "ivf":
            ivf = faiss.extract_index_ivf(self._index)
            # faiss's stubs lack DirectMap (faiss/__init__.pyi types direct_map as Any)
            if ivf.direct_map.type == faiss.DirectMap.NoMap:  # type: ignore[attr-defined]
                ivf.make_direct_map()
        return self._index.reconstruct_batch(np.asarray(indices, dtype=np.int64))

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        rerank: bool = False,
        candidates: int = 100,
        k1: int = 20,
        k2: int = 6,
        lambda_value: float = 0.3,
    ) -> SearchResult:
        """Top-``k`` gallery items for each of the ``(Q, D)`` queries.

        ``rerank`` re-orders each query's ``candidates`` best hits with k-reciprocal re-ranking
        (``omnireid.evaluation.rerank``) computed on that candidate subset alone; scores are
        then the re-ranked distances (lower is better).
        """
        if len(self) == 0:
            raise ValueError("the gallery index is empty; add features first")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q = self._prepare(queries, "queries")
        self._apply_search_params()
        n_first = max(k, candidates) if rerank else k
        assert self._index is not None  # len(self) > 0
        scores, indices = self._index.search(q, min(n_first, len(self)))
        higher = self.faiss_metric == "ip"
        if rerank:
            scores, indices = self._rerank(q, scores, indices, k, k1, k2, lambda_value)
            higher = False
        scores, indices = scores[:, :k], indices[:, :k].astype(np.int64)
        ok = indices >= 0
        safe = np.where(ok, indices, 0)
        paths = [[self.meta.paths[j] if j >= 0 else "" for j in row] for row in indices.tolist()]
        return SearchResult(
            scores=scores,
            indices=indices,
            paths=paths,
            pids=np.where(ok, self.meta.pids[safe], -1),
            camids=np.where(ok, self.meta.camids[safe], -1),
            timestamps=np.where(ok, self.meta.timestamps[safe], np.nan),
            higher_is_better=higher,
        )

    def _squared_l2(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.maximum(d, 0.0)

    def _rerank(
        self, q: np.ndarray, scores: np.ndarray, indices: np.ndarray, k: int, *params: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        from omnireid.evaluation.rerank import rerank as k_reciprocal

        out_s = np.full((len(q), k), np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        for i, row in enumerate(indices):
            cand = row[row >= 0]
            g = self.features(cand)
            qi = q[i : i + 1]
            d = k_reciprocal(
                self._squared_l2(qi, g), np.zeros((1, 1)), self._squared_l2(g, g), *params
            )[0]
            order = np.argsort(d, kind="stable")[:k]
            out_s[i, : len(order)], out_i[i, : len(order)] = d[order], cand[order]
        return out_s, out_i

    # ---------------------------------------------------------------------------------------
    # persistence

    def header(self) -> dict:
        return {
            "dim": self.dim,
            "spec": None if self.spec is None else self.spec.to_dict(),
            "metric": self.faiss_metric,  # the header's key since format 1
            "kind": self.kind,
            "normalize": self.normalize,
            "count": len(self),
            "params": self.params,
            "extra": self.extra,
        }

    def save(self, path: str | Path) -> Path:
        """Write the index directory ``path`` (created; existing files are replaced)."""
        if self._index is None:
            raise ValueError("cannot save an empty ivf index (nothing was added)")
        metadata = {
            "paths": np.asarray(self.meta.paths, dtype=str),
            "pids": self.meta.pids,
            "camids": self.meta.camids,
            "timestamps": self.meta.timestamps,
        }
        return write_index_dir(Path(path), self._index, metadata, self.header())

    @classmethod
    def load(
        cls, path: str | Path, *, expect_dim: int | None = None, expect_arch: str | None = None
    ) -> GalleryIndex:
        """Read an index directory; refuse it if corrupt or built for another dim/architecture."""
        path = Path(path)
        h = read_header(path)
        spec = header_spec(h, path / "header.json")
        arch = None if spec is None else spec.arch
        if expect_dim is not None and h["dim"] != expect_dim:
            raise IndexFileError(
                f"{path} holds {h['dim']}-d features but the extractor gives {expect_dim}-d ones"
            )
        if expect_arch is not None and arch != expect_arch:
            raise IndexFileError(
                f"{path} was built with arch {arch!r} but the extractor uses {expect_arch!r}"
            )
        faiss_index, m = read_index_dir(path, h)
        params = {k: h["params"][k] for k in ("nlist", "nprobe", "hnsw_m", "ef_construction")}
        index = cls(
            h["dim"],
            kind=h["kind"],
            faiss_metric=h["metric"],
            normalize=h["normalize"],
            ef_search=h["params"]["ef_search"],
            spec=spec,
            extra=h.get("extra"),
            **params,
        )
        index._index = faiss_index
        index.meta.extend(list(m["paths"]), m["pids"], m["camids"], m["timestamps"])
        if (
            index._index.d != h["dim"]
            or len(index) != h["count"]
            or len(index.meta.paths) != len(index)
        ):
            raise IndexFileError(f"{path} is inconsistent: header, index and metadata disagree")
        return index


def index_image_folder(extractor: Any, folder: str | Path, **options: Any) -> GalleryIndex:
    """Extract features of every image under ``folder`` (recursive) and index them.

    ``extractor`` is a ``FeatureExtractor`` (``extract_paths``, ``.spec``: stored in the
    header); paths are stored absolute; pids/camids come from Market-style file names (-1 when
    a name does not match).
    """
    paths = [p.resolve() for p in list_images(folder)]
    feats = extractor.extract_paths(paths)
    ids = [parse_market_name(p) or (-1, -1) for p in paths]
    options.setdefault("spec", extractor.spec)
    return GalleryIndex.build(
        feats,
        [str(p) for p in paths],
        pids=[pid for pid, _ in ids],
        camids=[cam for _, cam in ids],
        **options,
    )
