"""The Qdrant backend: the same gallery in a Qdrant collection, for more than one machine.

``QdrantStore(url=...)`` talks to a Qdrant server or cluster (its own replicated storage, HNSW
search, many service processes against one gallery); ``QdrantStore(path=...)`` runs
qdrant-client's local mode in-process on a folder, which needs no server and is what the
tests use (qdrant-client recommends it for at most ~20,000 points, and it stores points with
Python's pickle in its own SQLite file: use it for development, not on a site).

Each entry is one point: a deterministic UUID of the entry id, the normalised feature (cosine
distance), the metadata as payload. Writes use ``wait=True``: they return once Qdrant has
applied them. The gallery's ``meta`` lives in a one-point side collection ``<name>_meta``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np

from omnireid.errors import ServiceError, UsageError
from omnireid.serve.store import (
    Entry,
    Hit,
    check_meta,
    check_new_ids,
    normalized,
)

_NAMESPACE = uuid.UUID("6f6d6e69-7265-6964-2d67-616c6c657279")


def point_id(entry_id: str) -> str:
    """The Qdrant point id of an entry id (Qdrant takes integers or UUIDs only)."""
    return str(uuid.uuid5(_NAMESPACE, entry_id))


@contextmanager
def _qdrant_errors(where: str) -> Iterator[None]:
    """Qdrant's connection and response errors as one-line ``ServiceError``s."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except (ResponseHandlingException, UnexpectedResponse, ConnectionError) as e:
        raise ServiceError(f"Qdrant at {where} failed: {' '.join(str(e).split())}") from e


class QdrantStore:
    """A gallery in the Qdrant collection ``collection``: at ``url`` (a server; ``api_key``
    for Qdrant's own auth) or in the local folder ``path``. ``meta`` as for ``FaissStore``."""

    name = "qdrant"

    def __init__(
        self,
        meta: dict[str, Any],
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        collection: str = "omnireid_gallery",
    ) -> None:
        from qdrant_client import QdrantClient

        if (path is None) == (url is None):
            raise UsageError("QdrantStore needs a local path or a server url, not both")
        self.where, self.collection = str(path or url), collection
        self.local = path is not None
        with _qdrant_errors(self.where):
            self.client = (
                QdrantClient(path=path) if self.local else QdrantClient(url=url, api_key=api_key)
            )
            self.meta = self._init_meta(meta)
        self.dim = int(self.meta["dim"])
        self._write = threading.Lock()  # the id check and the upsert of one add, together
        # local mode is plain Python over shared arrays: one call at a time; a server takes
        # concurrent calls
        self._local_lock = threading.Lock() if self.local else None

    def _init_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        from qdrant_client import models

        side = f"{self.collection}_meta"
        where = f"collection {self.collection!r} at {self.where}"
        if self.client.collection_exists(self.collection):
            found = self.client.retrieve(side, [0], with_payload=True)
            stored = dict(found[0].payload or {}) if found else {}
            size = self.client.get_collection(self.collection).config.params.vectors.size
            check_meta({**stored, "dim": size}, meta, where)
            return {**stored, "dim": size}
        if not meta.get("dim"):
            raise UsageError(f"{where}: a new gallery needs the feature dimension")
        params = models.VectorParams(size=int(meta["dim"]), distance=models.Distance.COSINE)
        self.client.create_collection(self.collection, vectors_config=params)
        one = models.VectorParams(size=1, distance=models.Distance.DOT)
        if not self.client.collection_exists(side):
            self.client.create_collection(side, vectors_config=one)
        point = models.PointStruct(id=0, vector=[1.0], payload=dict(meta))
        self.client.upsert(side, [point], wait=True)
        return dict(meta)

    def _serial(self) -> AbstractContextManager:
        return self._local_lock or nullcontext()

    def add(self, entries: Sequence[Entry], feats: np.ndarray) -> None:
        from qdrant_client import models

        x = normalized(feats, self.dim)
        if len(x) != len(entries):
            raise ValueError(f"got {len(x)} features for {len(entries)} entries")
        points = [
            models.PointStruct(id=point_id(e.id), vector=f.tolist(), payload=e.to_dict())
            for e, f in zip(entries, x, strict=True)
        ]
        with self._write, _qdrant_errors(self.where):
            with self._serial():
                found = self.client.retrieve(self.collection, [p.id for p in points])
            taken = {str(p.id) for p in found}
            check_new_ids(entries, lambda i: point_id(i) in taken)
            with self._serial():
                self.client.upsert(self.collection, points, wait=True)

    def remove(self, entry_id: str) -> bool:
        from qdrant_client import models

        pid = point_id(entry_id)
        with self._write, _qdrant_errors(self.where), self._serial():
            if not self.client.retrieve(self.collection, [pid]):
                return False
            selector = models.PointIdsList(points=[pid])
            self.client.delete(self.collection, points_selector=selector, wait=True)
        return True

    def get(self, entry_id: str) -> Entry | None:
        with _qdrant_errors(self.where), self._serial():
            found = self.client.retrieve(self.collection, [point_id(entry_id)], with_payload=True)
        return Entry.from_dict(found[0].payload) if found else None

    def feature(self, entry_id: str) -> np.ndarray | None:
        with _qdrant_errors(self.where), self._serial():
            found = self.client.retrieve(self.collection, [point_id(entry_id)], with_vectors=True)
        return np.asarray(found[0].vector, np.float32) if found else None

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        from qdrant_client import models

        q = normalized(queries, self.dim, "queries")
        requests = [models.QueryRequest(query=v.tolist(), limit=k, with_payload=True) for v in q]
        with _qdrant_errors(self.where), self._serial():
            answers = self.client.query_batch_points(self.collection, requests)
        return [
            [Hit(Entry.from_dict(p.payload), float(p.score)) for p in a.points] for a in answers
        ]

    def __len__(self) -> int:
        with _qdrant_errors(self.where), self._serial():
            return int(self.client.count(self.collection, exact=True).count)

    def info(self) -> dict[str, Any]:
        mode = "local" if self.local else "server"
        return {"qdrant": self.where, "mode": mode, "collection": self.collection}

    def close(self) -> None:
        with self._write, self._serial():
            self.client.close()
