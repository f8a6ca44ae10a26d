"""Opening a gallery by backend name: ``faiss`` (SQLite + FAISS in the gallery folder) or
``qdrant`` (a Qdrant server at a url, or qdrant-client's local mode in ``<folder>/qdrant``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnireid.errors import UsageError
from omnireid.serve.store import VectorStore

BACKENDS = ("faiss", "qdrant")


def open_store(
    backend: str,
    folder: str | Path,
    meta: dict[str, Any],
    *,
    qdrant_url: str | None = None,
    qdrant_api_key: str | None = None,
    collection: str = "omnireid_gallery",
) -> VectorStore:
    """The gallery in ``folder`` (or, for qdrant, at ``qdrant_url`` when given), created when
    it does not exist yet; ``meta`` (``dim``, ``arch``, ``weights_sha256``) is recorded or
    checked."""
    if backend == "faiss":
        from omnireid.serve.faiss_store import FaissStore

        return FaissStore(folder, meta)
    if backend == "qdrant":
        from omnireid.serve.qdrant_store import QdrantStore

        if qdrant_url:
            return QdrantStore(meta, url=qdrant_url, api_key=qdrant_api_key, collection=collection)
        return QdrantStore(meta, path=str(Path(folder) / "qdrant"), collection=collection)
    raise UsageError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
