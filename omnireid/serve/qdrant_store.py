"""The Qdrant backend: the same gallery in a Qdrant collection, for more than one machine.

``QdrantStore(url=...)`` talks to a Qdrant server or cluster (its own replicated storage, HNSW
search, many service processes against one gallery). ``QdrantStore(folder=...,
unsafe_local=True)`` runs qdrant-client's local mode in-process on ``folder/qdrant``: no
server, what the tests use, and unsafe anywhere else. Local mode keeps each point as a
``pickle`` of a Python object in ``folder/qdrant/collection/<name>/storage.sqlite`` and
unpickles every one of them when it opens (qdrant-client 1.20 ``local/persistence.py``), so
whoever can write that folder runs code in the server; it also searches by brute force in
Python (recommended for at most ~20,000 points). Without ``unsafe_local=True`` it is refused
before any file is opened. Local mode holds the folder's lock (``folder_lock``) while open.

Each entry is one point: a deterministic UUID of the entry id, the normalised feature (cosine
distance), the metadata as payload. Writes use ``wait=True``: they return once Qdrant has
applied them. The gallery's ``meta`` lives in a one-point side collection ``<name>_meta``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

import numpy as np

from omnireid.errors import ServiceError, UsageError
from omnireid.serve.folder_lock import FolderLock
from omnireid.serve.store import (
    IMPORT_KEY,
    Entry,
    Hit,
    check_meta,
    check_new_ids,
    gallery_spec,
    normalized,
)

_NAMESPACE = uuid.UUID("6f6d6e69-7265-6964-2d67-616c6c657279")
LOCAL_FOLDER = "qdrant"
LOCAL_REFUSED = (
    "qdrant-client's local mode unpickles {where} when it opens (whoever can write that folder "
    "runs code in the server): give a Qdrant server (--qdrant-url), or --unsafe-local-qdrant "
    "for development on a folder only you can write"
)


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
    for Qdrant's own auth) or, with ``unsafe_local=True``, in local mode in ``folder/qdrant``.
    ``meta`` as for ``FaissStore``."""

    name = "qdrant"

    def __init__(
        self,
        meta: dict[str, Any],
        *,
        folder: str | Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        collection: str = "omnireid_gallery",
        unsafe_local: bool = False,
    ) -> None:
        if (folder is None) == (url is None):
            raise UsageError("QdrantStore needs a local folder or a server url, not both")
        self.local = folder is not None
        path = Path(folder or ".") / LOCAL_FOLDER
        if self.local and not unsafe_local:
            raise UsageError(LOCAL_REFUSED.format(where=path))
        self.where, self.collection = str(path.resolve() if self.local else url), collection
        self.lock = FolderLock(folder) if folder is not None else None
        try:
            self._open(meta, url, api_key)
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise
        self.dim = int(self.meta["dim"])
        self.spec = gallery_spec(self.meta, self.where)
        self._write = threading.Lock()  # the id check and the upsert of one add, together
        # local mode is plain Python over shared arrays: one call at a time; a server takes
        # concurrent calls
        self._local_lock = threading.Lock() if self.local else None

    def _open(self, meta: dict[str, Any], url: str | None, api_key: str | None) -> None:
        from qdrant_client import QdrantClient

        with _qdrant_errors(self.where):
            if self.local:
                self.client = QdrantClient(path=self.where)
            else:
                self.client = QdrantClient(url=url, api_key=api_key)
            try:
                self.meta = self._init_meta(meta)
            except BaseException:
                self.client.close()
                raise

    def _init_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        from qdrant_client import models

        side = f"{self.collection}_meta"
        where = f"collection {self.collection!r} at {self.where}"
        client = self.client
        if client.collection_exists(self.collection):
            found = client.retrieve(side, [0]) if client.collection_exists(side) else []
            vectors = client.get_collection(self.collection).config.params.vectors
            size = cast(models.VectorParams, vectors).size  # one unnamed vector, created below
            stored = {**((found[0].payload or {}) if found else {}), "dim": size}
            check_meta(stored, meta, where)
            if found or client.count(self.collection, exact=True).count:
                return stored
            # created, but not its record: a start cut short; the record is written below
        else:
            if not meta.get("dim"):
                raise UsageError(f"{where}: a new gallery needs the feature dimension")
            params = models.VectorParams(size=int(meta["dim"]), distance=models.Distance.COSINE)
            client.create_collection(self.collection, vectors_config=params)
        if not client.collection_exists(side):
            one = models.VectorParams(size=1, distance=models.Distance.DOT)
            client.create_collection(side, vectors_config=one)
        stored = {**meta, IMPORT_KEY: None}
        client.upsert(side, [models.PointStruct(id=0, vector=[1.0], payload=stored)], wait=True)
        return stored

    def _serial(self) -> AbstractContextManager:
        return self._local_lock or nullcontext()

    def add(
        self,
        entries: Sequence[Entry],
        feats: np.ndarray,
        *,
        meta_update: dict[str, Any] | None = None,
    ) -> None:
        """As ``VectorStore.add``; ``meta_update`` is written once the points are (Qdrant has
        no transaction over both)."""
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
            if points:
                with self._serial():
                    self.client.upsert(self.collection, points, wait=True)
            for key, value in (meta_update or {}).items():
                self._record(key, value)

    def record(self, key: str, value: Any) -> None:
        with self._write, _qdrant_errors(self.where):
            self._record(key, value)

    def _record(self, key: str, value: Any) -> None:
        with self._serial():
            self.client.set_payload(
                f"{self.collection}_meta", payload={key: value}, points=[0], wait=True
            )
        self.meta[key] = value

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
        return Entry.from_dict(cast(dict[str, Any], found[0].payload)) if found else None

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
            [
                Hit(Entry.from_dict(cast(dict[str, Any], p.payload)), float(p.score))
                for p in a.points
            ]
            for a in answers
        ]

    def __len__(self) -> int:
        with _qdrant_errors(self.where), self._serial():
            return int(self.client.count(self.collection, exact=True).count)

    def info(self) -> dict[str, Any]:
        if self.lock is None:
            return {"qdrant": self.where, "mode": "server", "collection": self.collection}
        where = {"qdrant": self.where, "mode": "local (unsafe)", "collection": self.collection}
        return {**where, "lock": str(self.lock.path)}

    def close(self) -> None:
        with self._write, self._serial():
            self.client.close()
            if self.lock is not None:
                self.lock.release()
