"""A gallery built by ``omnireid index build`` moved into the service's store, once.

The store records the import under ``meta["index_import"]`` (the index's header checksum,
when, how many entries), in the same transaction as the entries where the backend has
transactions (SQLite). An index whose import is recorded is never imported again, so entries
deleted since stay deleted across restarts. An import cut short (Qdrant: points written, the
record not yet) is finished on the next start; nothing was served in between, so nothing
deleted comes back. Another index in the folder than the one imported is refused.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from omnireid.deploy.index import GalleryIndex
from omnireid.deploy.index_file import header_spec, read_header
from omnireid.errors import UsageError
from omnireid.serve.store import IMPORT_KEY, Entry, VectorStore

log = logging.getLogger("omnireid.serve")


def _entries(index: GalleryIndex) -> list[Entry]:
    """ids ``index-<row>``, labels ``path`` and ``pid`` (when known), camera and timestamp
    when known."""
    meta = index.meta
    entries = []
    for i, path in enumerate(meta.paths):
        pid, camid, stamp = int(meta.pids[i]), int(meta.camids[i]), float(meta.timestamps[i])
        labels = {"path": path, **({"pid": str(pid)} if pid >= 0 else {})}
        camera = camid if camid >= 0 else None
        timestamp = stamp if math.isfinite(stamp) else None
        entries.append(Entry(f"index-{i}", camera=camera, timestamp=timestamp, labels=labels))
    return entries


def _check_fits(store: VectorStore, folder: Path, header: dict) -> None:
    """Refuse an index of other weights or another input size than the gallery's model."""
    built, ours = header_spec(header, folder), store.spec
    if built is None or ours is None:
        return
    if built.weights_sha256 and ours.weights_sha256 and built.weights_sha256 != ours.weights_sha256:
        path = (header.get("extra") or {}).get("weights")
        raise UsageError(
            f"{folder} was built with other weights ({path}) than the server's: "
            "its features would not match queries"
        )
    size, ours_size = built.preprocessing, ours.preprocessing
    if size is not None and ours_size is not None and size.input_size != ours_size.input_size:
        raise UsageError(
            f"{folder} holds features of {list(size.input_size)} inputs, the server uses "
            f"{list(ours_size.input_size)}"
        )


def import_index(store: VectorStore, folder: str | Path) -> int:
    """Add the entries of the index directory ``folder`` to ``store`` unless the store records
    that it imported them already; returns how many were added (0 when already imported).
    Refuses an index of other weights, architecture, input or feature size, and another
    index than the one the store imported."""
    folder = Path(folder)
    header = read_header(folder)
    digest = header["header_sha256"]
    if IMPORT_KEY not in store.meta:  # created before imports were recorded
        log.warning(
            "the gallery in %s predates import records: its index is taken as imported (an "
            "earlier omnireid imported it on the first start); deleted entries stay deleted",
            folder,
        )
        store.record(IMPORT_KEY, {"sha256": digest, "complete": True, "entries": None})
        return 0
    done = store.meta[IMPORT_KEY]
    if done is not None and done.get("sha256") != digest:
        raise UsageError(
            f"{folder / 'header.json'} is another index than the one this gallery imported "
            f"(header SHA-256 {str(done.get('sha256'))[:12]}...): a gallery imports one index, "
            "once; serve the new index from a folder of its own, or move its files away"
        )
    if done is not None and done.get("complete"):
        return 0
    _check_fits(store, folder, header)
    arch = None if store.spec is None else store.spec.arch
    index = GalleryIndex.load(folder, expect_dim=store.dim, expect_arch=arch)
    entries = _entries(index)
    feats = index.features(np.arange(len(entries))) if entries else np.empty((0, store.dim))
    keep = np.arange(len(entries))
    if done is None:
        store.record(IMPORT_KEY, {"sha256": digest, "complete": False, "entries": len(entries)})
    else:  # resumed: what the cut-short import wrote is there already
        keep = np.array([i for i, e in enumerate(entries) if store.get(e.id) is None], np.int64)
    record = {"sha256": digest, "complete": True, "entries": len(entries), "at": time.time()}
    store.add(
        [entries[i] for i in keep],
        feats[keep].reshape(-1, store.dim),
        meta_update={IMPORT_KEY: record},
    )
    return len(keep)
