"""The vector-store interface of the gallery service, and what its backends share.

A store keeps gallery entries (an id, L2-normalised ``(D,)`` float32 feature and metadata) and
answers top-k cosine queries. ``add`` and ``remove`` return only once the change is durable:
that is what lets the service acknowledge an enrolment. Backends: ``faiss_store.FaissStore``
(SQLite + an in-memory FAISS index, the default) and ``qdrant_store.QdrantStore``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from omnireid.errors import CheckpointError, IndexFileError, RequestError, UsageError
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing

# an id is one URL path segment as every client sends it: "." and ".." are not (clients
# resolve them away, RFC 3986 5.2.4), so an id is not made of dots only
ID_PATTERN = r"^[A-Za-z0-9_.:-]*[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$"
ID_MAX = 64
_ID = re.compile(ID_PATTERN)
_STORED_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # what earlier versions accepted
# a store's ``meta`` key recording the `omnireid index build` index it imported (None: none
# yet); a store whose meta lacks it was created before imports were recorded
IMPORT_KEY = "index_import"
SPEC_KEY = "spec"  # the model's ModelSpec (gallery_meta)
_OLD_KEYS = ("arch", "weights_sha256", "image_size")  # what galleries recorded before it


@dataclass(frozen=True)
class Entry:
    """One enrolment's metadata: ``camera`` is 0-based, ``timestamp`` in seconds (any epoch
    the site uses), ``labels`` free ``str -> str`` pairs; None when unknown."""

    id: str
    camera: int | None = None
    timestamp: float | None = None
    track_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "camera": self.camera,
            "timestamp": self.timestamp,
            "track_id": self.track_id,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(
            id=str(d["id"]),
            camera=d.get("camera"),
            timestamp=d.get("timestamp"),
            track_id=d.get("track_id"),
            labels=dict(d.get("labels") or {}),
        )


@dataclass(frozen=True)
class Hit:
    """A gallery entry found for a query, with its cosine similarity (higher is closer)."""

    entry: Entry
    score: float


class VectorStore(Protocol):
    """What the service needs from a backend. ``meta`` holds what the gallery was built with
    (``gallery_meta``: ``dim`` and the model's ``spec``) and its import record; ``spec`` is
    that spec (``gallery_spec``)."""

    name: str
    dim: int
    meta: dict[str, Any]
    spec: ModelSpec | None

    def add(
        self,
        entries: Sequence[Entry],
        feats: np.ndarray,
        *,
        meta_update: dict[str, Any] | None = None,
    ) -> None:
        """Store ``(N, dim)`` features with their entries, all or none; durable on return.
        ``meta_update``: ``meta`` keys set with them (in the same transaction where the
        backend has one, else just after them)."""

    def record(self, key: str, value: Any) -> None:
        """Set ``meta[key]`` to a JSON value, durably."""

    def remove(self, entry_id: str) -> bool:
        """Delete one entry (durable on return); False when there was none."""

    def get(self, entry_id: str) -> Entry | None: ...

    def feature(self, entry_id: str) -> np.ndarray | None:
        """The stored (normalised) ``(dim,)`` feature of an entry."""

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """The ``k`` most similar entries of each of the ``(Q, dim)`` queries, best first."""

    def __len__(self) -> int: ...

    def info(self) -> dict[str, Any]:
        """Where the gallery lives and how it is kept, for ``/stats``."""

    def close(self) -> None: ...


ID_RULE = "1-64 letters, digits or _ . : -, not only dots"


def check_id(entry_id: str) -> str:
    """A new entry's id as the API accepts it: 1-64 letters, digits or ``_ . : -``, not
    ``.``, ``..`` or other dots only (no client can put those in a URL path)."""
    if len(entry_id) > ID_MAX or not _ID.fullmatch(entry_id):
        raise RequestError(f"id {entry_id!r} must be {ID_RULE}", 422)
    return entry_id


def check_path_id(entry_id: str) -> str:
    """An id in a URL path (look-up, delete): anything a store may hold, including ids an
    earlier version accepted (``...``), so that those stay reachable."""
    if not _STORED_ID.fullmatch(entry_id):
        raise RequestError(f"id {entry_id!r} must be {ID_RULE}", 422)
    return entry_id


def check_new_ids(entries: Sequence[Entry], exists: Callable[[str], bool]) -> None:
    """Refuse an id that is already enrolled (409) or repeated within one request (422)."""
    seen: set[str] = set()
    for e in entries:
        if exists(e.id):
            raise RequestError(f"id {e.id!r} is already enrolled", 409)
        if e.id in seen:
            raise RequestError(f"id {e.id!r} appears twice in the request", 422)
        seen.add(e.id)


def normalized(feats: Any, dim: int, what: str = "features") -> np.ndarray:
    """``(N, dim)`` float32 rows scaled to unit length; refuses other shapes, NaN and zeros.

    Each row is divided by its largest magnitude before its length is taken (in float64 when
    the rows come as float64, e.g. from JSON), so a row of tiny values (1e-30, whose squares
    vanish in float32) or huge ones (1e38, whose squares overflow) keeps its direction: only
    a row that is zero everywhere has none.
    """
    x = np.asarray(feats)
    x = x.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=False)
    if x.ndim != 2 or x.shape[1] != dim:
        got = x.shape[1] if x.ndim == 2 else f"shape {x.shape}"
        raise RequestError(f"{what} must be {dim}-dimensional, got {got}", 422)
    if not np.isfinite(x).all():
        raise RequestError(f"{what} contain NaN or infinite values", 422)
    if not len(x):
        return np.zeros((0, dim), np.float32)
    peak = np.abs(x).max(axis=1, keepdims=True)
    if not peak.all():
        raise RequestError(f"{what} contain an all-zero vector, which has no direction", 422)
    x = x / peak
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def gallery_meta(spec: ModelSpec, dim: int) -> dict[str, Any]:
    """What a new gallery records of the model whose features it keeps: the feature size and
    the model's spec (``ModelSpec.to_dict``)."""
    return {"dim": int(dim), SPEC_KEY: spec.to_dict()}


def gallery_spec(meta: dict[str, Any], where: str = "the gallery") -> ModelSpec | None:
    """The spec a gallery's ``meta`` records. A gallery created before the spec recorded
    ``arch``, ``weights_sha256`` and ``image_size`` instead (``_OLD_KEYS``): read into a spec
    whose preprocessing has that size and the defaults (the rest was not recorded); None when
    it recorded no model."""
    if meta.get(SPEC_KEY) is not None:
        try:
            return ModelSpec.from_dict(meta[SPEC_KEY], source=where)
        except CheckpointError as e:
            raise IndexFileError(str(e)) from e
    arch, sha256, size = (meta.get(k) for k in _OLD_KEYS)
    if arch is None:
        return None
    return ModelSpec(
        arch=str(arch),
        feature_dim=int(meta.get("dim") or 512),
        weights_sha256=str(sha256 or ""),
        preprocessing=None if not size else Preprocessing(int(size[0]), int(size[1])),
    )


def _identity(meta: dict[str, Any], where: str) -> dict[str, Any]:
    """What makes features comparable, as far as ``meta`` records it (None: not recorded;
    the whole preprocessing only where the spec itself was recorded)."""
    spec = gallery_spec(meta, where)
    pre = None if spec is None else spec.preprocessing
    return {
        "dim": meta.get("dim"),
        "arch": None if spec is None else spec.arch,
        "weights_sha256": (spec.weights_sha256 or None) if spec is not None else None,
        "image_size": None if pre is None else list(pre.input_size),
        "preprocessing": pre.to_meta() if pre is not None and meta.get(SPEC_KEY) else None,
    }


def check_meta(stored: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """Refuse a gallery built with another feature size, architecture, weights, input size or
    preprocessing: its features would not be comparable with the model's."""
    ours, theirs = _identity(stored, where), _identity(expected, "this server's model")
    for key, value in ours.items():
        known = value is not None and theirs[key] is not None
        if known and value != theirs[key]:
            raise UsageError(
                f"{where} was built with {key}={value!r}, but this server has "
                f"{theirs[key]!r}: its features would not match the gallery's"
            )


class ReadWriteLock:
    """Many readers or one writer (readers wait while a writer waits, so writes get through)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting_writers = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
