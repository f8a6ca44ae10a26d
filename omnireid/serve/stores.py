"""Opening a gallery's vector store by name: ``faiss`` (SQLite + FAISS in the gallery folder) or
``qdrant`` (a Qdrant server at a url; qdrant-client's local mode in ``<folder>/qdrant`` only
with ``unsafe_local_qdrant=True``, as it unpickles that folder: see ``qdrant_store``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnireid.errors import UsageError
from omnireid.serve.store import VectorStore

STORES = ("faiss", "qdrant")


def open_store(
    store: str,
    folder: str | Path,
    meta: dict[str, Any],
    *,
    qdrant_url: str | None = None,
    qdrant_api_key: str | None = None,
    collection: str = "omnireid_gallery",
    unsafe_local_qdrant: bool = False,
) -> VectorStore:
    """The gallery in ``folder`` (or, for qdrant, at ``qdrant_url`` when given), created when
    it does not exist yet; ``meta`` (``store.gallery_meta``: ``dim`` and the model's spec)
    is recorded or checked. A gallery in ``folder`` holds its lock while open (one store per
    folder)."""
    if store == "faiss":
        from omnireid.serve.faiss_store import FaissStore

        return FaissStore(folder, meta)
    if store == "qdrant":
        from omnireid.serve.qdrant_store import QdrantStore

        if qdrant_url:
            return QdrantStore(meta, url=qdrant_url, api_key=qdrant_api_key, collection=collection)
        return QdrantStore(
            meta, folder=folder, collection=collection, unsafe_local=unsafe_local_qdrant
        )
    raise UsageError(f"unknown store {store!r}; expected one of {STORES}")
