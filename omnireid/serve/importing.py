"""A gallery built by ``omnireid index build`` moved into the service's store, once."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from omnireid.deploy.index import GalleryIndex
from omnireid.deploy.index_file import read_header
from omnireid.errors import UsageError
from omnireid.serve.store import Entry, VectorStore


def import_index(store: VectorStore, folder: str | Path) -> int:
    """Add every entry of the index directory ``folder`` to ``store`` in one call (all or
    none); ids ``index-<row>``, labels ``path`` and ``pid`` (when known), camera and timestamp
    when known. Refuses an index of other weights, architecture, input or feature size."""
    header = read_header(folder)
    built = (header.get("extra") or {}).get("weights") or {}
    ours = store.meta.get("weights_sha256")
    if built.get("sha256") and ours and built["sha256"] != ours:
        raise UsageError(
            f"{folder} was built with other weights ({built.get('path')}) than the server's: "
            "its features would not match queries"
        )
    size, ours_size = header.get("image_size"), store.meta.get("image_size")
    if size and ours_size and list(size) != list(ours_size):
        raise UsageError(f"{folder} holds features of {size} inputs, the server uses {ours_size}")
    index = GalleryIndex.load(folder, expect_dim=store.dim, expect_arch=store.meta.get("arch"))
    meta = index.meta
    entries = []
    for i, path in enumerate(meta.paths):
        pid, camid, stamp = int(meta.pids[i]), int(meta.camids[i]), float(meta.timestamps[i])
        labels = {"path": path, **({"pid": str(pid)} if pid >= 0 else {})}
        camera = camid if camid >= 0 else None
        timestamp = stamp if math.isfinite(stamp) else None
        entries.append(Entry(f"index-{i}", camera=camera, timestamp=timestamp, labels=labels))
    if entries:
        store.add(entries, index.features(np.arange(len(entries))))
    return len(entries)
