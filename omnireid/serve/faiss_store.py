"""The default backend: every entry in SQLite, searched exactly in memory.

SQLite (``gallery.sqlite`` in the gallery folder) is the single source of truth: WAL journal
with ``synchronous=FULL``, so a commit is on disk (fsync) before ``add`` or ``remove``
returns. Each row holds the entry's metadata and its normalised feature as a float32 blob.
The in-memory search is derived from it: a FAISS index of the float32 rows (ids = SQLite row
numbers) and ``exact.ExactSearch`` over them (an int8 first pass that narrows, then exact
scores), built when the store opens and updated after each commit, so a crash at any moment
loses no committed row and the next start finds all of them. No pickle: rows are SQL values
and JSON. The store holds the folder's lock (``folder_lock.FolderLock``) from open to close:
one writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from omnireid.errors import IndexFileError
from omnireid.serve.exact import CHUNK, ExactSearch
from omnireid.serve.folder_lock import FolderLock
from omnireid.serve.store import (
    IMPORT_KEY,
    Entry,
    Hit,
    ReadWriteLock,
    check_meta,
    check_new_ids,
    gallery_spec,
    normalized,
)

DB_FILE = "gallery.sqlite"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    feature BLOB NOT NULL,
    camera INTEGER,
    timestamp REAL,
    track_id TEXT,
    labels TEXT NOT NULL,
    created REAL NOT NULL
);
"""
_COLUMNS = "seq, id, feature, camera, timestamp, track_id, labels"
_INSERT = (
    "INSERT INTO entries (id, feature, camera, timestamp, track_id, labels, created)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class FaissStore:
    """SQLite + FAISS gallery in ``folder`` (created when missing).

    ``meta`` (``store.gallery_meta``: ``dim`` and the model's spec) is recorded by a new
    gallery and checked against an existing one (``store.check_meta``); ``dim`` is required
    for a new gallery. A folder another store
    holds (in any process) is refused with ``UsageError``. ``chunk``: rows per int8 block of
    the search (``exact.CHUNK``; small ones in tests).
    """

    name = "faiss"

    def __init__(self, folder: str | Path, meta: dict[str, Any], *, chunk: int = CHUNK) -> None:
        self.lock = FolderLock(folder)  # before anything in the folder is read or written
        try:
            self._open(meta, chunk)
        except BaseException:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            self.lock.release()
            raise

    def _open(self, meta: dict[str, Any], chunk: int) -> None:
        self.folder = self.lock.folder
        self.path = self.folder / DB_FILE
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # a new database only: 16 KiB pages hold seven 2 KiB (512-d) rows, 4 KiB pages one
            self._db.execute("PRAGMA page_size=16384")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self.meta = self._init_meta(meta)
        except sqlite3.DatabaseError as e:
            raise IndexFileError(f"{self.path} is not a usable gallery database ({e})") from e
        self.journal = mode
        self.dim = int(self.meta["dim"])
        self.spec = gallery_spec(self.meta, str(self.path))
        self._write = threading.Lock()  # one writer at a time: SQLite, then the index
        self._rw = ReadWriteLock()  # searches in parallel, never during an index update
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))  # the float32 rows
        self._exact = ExactSearch(self.dim, self._index.reconstruct_batch, chunk)
        self._entries: dict[int, Entry] = {}
        self._seq: dict[str, int] = {}
        started = time.perf_counter()
        self._load()
        self.load_seconds = time.perf_counter() - started

    def _init_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        stored = {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}
        if stored:
            if stored.get("schema") != SCHEMA_VERSION:
                raise IndexFileError(
                    f"{self.path} has gallery schema {stored.get('schema')!r}; this omnireid "
                    f"reads {SCHEMA_VERSION}"
                )
            check_meta(stored, meta, str(self.path))
            return stored
        if not meta.get("dim"):
            raise IndexFileError(f"{self.path}: a new gallery needs the feature dimension")
        stored = {**meta, "schema": SCHEMA_VERSION, "created": time.time(), IMPORT_KEY: None}
        self._db.execute("BEGIN IMMEDIATE")
        self._set_meta(stored)
        self._db.execute("COMMIT")
        return stored

    def _set_meta(self, values: dict[str, Any]) -> None:
        """Within a transaction: the ``meta`` rows of ``values`` (JSON), inserted or replaced."""
        self._db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in values.items()],
        )

    def _load(self) -> None:
        """Rebuild the in-memory index and metadata from every row of the database."""
        cursor = self._db.execute(f"SELECT {_COLUMNS} FROM entries ORDER BY seq")
        while rows := cursor.fetchmany(10_000):
            feats = np.empty((len(rows), self.dim), np.float32)
            seqs = np.empty(len(rows), np.int64)
            for i, row in enumerate(rows):
                if len(row[2]) != 4 * self.dim:
                    raise IndexFileError(f"{self.path}: entry {row[1]!r} has a damaged feature")
                feats[i] = np.frombuffer(row[2], np.float32)
                seqs[i] = row[0]
                self._remember(row)
            self._index.add_with_ids(feats, seqs)
            self._exact.add(seqs, feats)
        self._exact.flush()

    def _remember(self, row: tuple) -> None:
        seq, entry_id, _, camera, timestamp, track_id, labels = row
        entry = Entry(entry_id, camera, timestamp, track_id, json.loads(labels))
        self._entries[seq], self._seq[entry_id] = entry, seq

    def add(
        self,
        entries: Sequence[Entry],
        feats: np.ndarray,
        *,
        meta_update: dict[str, Any] | None = None,
    ) -> None:
        x = normalized(feats, self.dim)
        if len(x) != len(entries):
            raise ValueError(f"got {len(x)} features for {len(entries)} entries")
        now = time.time()
        with self._write:
            check_new_ids(entries, self._seq.__contains__)
            rows = []
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for e, f in zip(entries, x, strict=True):
                    labels = json.dumps(e.labels)
                    values = (e.id, f.tobytes(), e.camera, e.timestamp, e.track_id, labels, now)
                    cursor = self._db.execute(_INSERT, values)
                    rows.append((cursor.lastrowid, e.id, None, *values[2:5], labels))
                self._set_meta(meta_update or {})
                self._db.execute("COMMIT")  # durable from here on: WAL + synchronous=FULL
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.meta.update(meta_update or {})
            seqs = np.array([r[0] for r in rows], np.int64)
            with self._rw.writing():
                self._index.add_with_ids(x, seqs)
                self._exact.add(seqs, x)
                for row in rows:
                    self._remember(row)

    def record(self, key: str, value: Any) -> None:
        with self._write:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._set_meta({key: value})
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.meta[key] = value

    def remove(self, entry_id: str) -> bool:
        with self._write:
            seq = self._seq.get(entry_id)
            if seq is None:
                return False
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM entries WHERE seq = ?", (seq,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            with self._rw.writing():
                # faiss's stub takes an IDSelector only; its wrapper also takes an id array
                self._index.remove_ids(np.array([seq], np.int64))  # type: ignore[arg-type]
                self._exact.remove(seq)
                del self._entries[seq], self._seq[entry_id]
        return True

    def get(self, entry_id: str) -> Entry | None:
        seq = self._seq.get(entry_id)
        return None if seq is None else self._entries.get(seq)

    def feature(self, entry_id: str) -> np.ndarray | None:
        with self._rw.reading():
            seq = self._seq.get(entry_id)
            # faiss's stub picks its torch overload (x=None); with numpy it returns an ndarray
            return None if seq is None else self._index.reconstruct(seq)  # type: ignore[return-value]

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Exact (``exact.ExactSearch``); scores are the float32 of the exact products."""
        q = normalized(queries, self.dim, "queries")
        with self._rw.reading():
            seqs, scores = self._exact.search(q, k)
            entries = [[self._entries[int(s)] for s in row] for row in seqs]
        return [
            [Hit(e, float(np.float32(s))) for e, s in zip(row_e, row_s, strict=True)]
            for row_e, row_s in zip(entries, scores, strict=True)
        ]

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def info(self) -> dict[str, Any]:
        return {
            "database": str(self.path),
            "journal": self.journal,
            "synchronous": "full",
            "search": "exact, int8 first pass" if self._exact.int8 else "exact, float32 scan",
            "lock": str(self.lock.path),
        }

    def close(self) -> None:
        with self._write:
            self._db.close()
            self.lock.release()
