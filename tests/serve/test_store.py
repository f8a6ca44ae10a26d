import json
import os
import re
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from omnireid.errors import IndexFileError, RequestError, UsageError
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing
from omnireid.serve import stores
from omnireid.serve.faiss_store import DB_FILE, FaissStore
from omnireid.serve.store import Entry, gallery_meta, gallery_spec
from tests.serve.helpers import unit_rows

# what a gallery recorded before the spec (an existing gallery folder of an earlier omnireid)
META = {"dim": 16, "arch": "osnet_x0_25", "weights_sha256": "ab" * 32, "image_size": [256, 128]}
SPEC = ModelSpec(
    "osnet_x0_25", feature_dim=16, preprocessing=Preprocessing(), weights_sha256="ab" * 32
)


def open_store(backend, folder, meta):
    """A store as the service opens it (Qdrant: local mode, which tests may use)."""
    return stores.open_store(backend, folder, meta, unsafe_local_qdrant=True)


@pytest.fixture(params=["faiss", "qdrant"])
def backend(request) -> str:
    return request.param


def entries(n: int, start: int = 0) -> list[Entry]:
    return [
        Entry(f"p{i}", camera=i % 3, timestamp=100.0 + i, track_id=f"t{i}", labels={"n": str(i)})
        for i in range(start, start + n)
    ]


def test_search_ranks_by_cosine_like_brute_force(tmp_path, backend):
    store = open_store(backend, tmp_path, META)
    gallery = unit_rows(40, 16, seed=0)
    store.add(entries(40), 3.0 * gallery)  # any length: the store normalises
    queries = unit_rows(3, 16, seed=1)
    hits = store.search(queries, k=5)
    expected = np.argsort(-(queries @ gallery.T), axis=1)[:, :5]
    for q, row, best in zip(queries, hits, expected, strict=True):
        assert [h.entry.id for h in row] == [f"p{i}" for i in best]
        np.testing.assert_allclose([h.score for h in row], gallery[best] @ q, atol=1e-5)
    assert hits[0][0].entry == entries(40)[expected[0][0]]  # metadata comes back whole
    store.close()


def test_entries_survive_reopening_and_removal_is_kept(tmp_path, backend):
    store = open_store(backend, tmp_path, META)
    feats = unit_rows(6, 16, seed=2)
    store.add(entries(6), feats)
    assert store.remove("p2") and not store.remove("p2")
    store.close()
    store = open_store(backend, tmp_path, META)
    assert len(store) == 5 and store.get("p2") is None
    assert store.get("p4") == entries(6)[4]
    np.testing.assert_allclose(store.feature("p5"), feats[5], atol=1e-6)
    assert [h.entry.id for h in store.search(feats[[3]], k=1)[0]] == ["p3"]
    store.close()


def test_a_taken_id_refuses_the_whole_request(tmp_path, backend):
    store = open_store(backend, tmp_path, META)
    store.add(entries(2), unit_rows(2, 16, seed=3))
    with pytest.raises(RequestError, match="'p1' is already enrolled") as caught:
        store.add(entries(3, start=1), unit_rows(3, 16, seed=4))  # p1 taken, p2 and p3 new
    assert caught.value.status == 409
    assert len(store) == 2 and store.get("p2") is None  # all or none
    with pytest.raises(RequestError, match="twice") as caught:
        store.add([Entry("x"), Entry("x")], unit_rows(2, 16, seed=5))
    assert caught.value.status == 422 and len(store) == 2
    store.close()


def test_bad_features_are_refused(tmp_path, backend):
    store = open_store(backend, tmp_path, META)
    for bad, reason in [
        (np.ones((1, 8)), "16-dimensional, got 8"),
        (np.full((1, 16), np.nan), "NaN"),
        (np.zeros((1, 16)), "all-zero"),
    ]:
        with pytest.raises(RequestError, match=reason):
            store.add([Entry("a")], bad)
    assert len(store) == 0 and store.search(unit_rows(1, 16, seed=0), k=3) == [[]]
    store.close()


def test_a_gallery_of_other_weights_or_size_is_refused(tmp_path, backend):
    open_store(backend, tmp_path, META).close()
    with pytest.raises(UsageError, match=r"weights_sha256=.*features would not match"):
        open_store(backend, tmp_path, {**META, "weights_sha256": "cd" * 32})
    with pytest.raises(UsageError, match="dim=16"):
        open_store(backend, tmp_path, {**META, "dim": 32})
    with pytest.raises(UsageError, match=r"image_size=\[256, 128\]"):
        open_store(backend, tmp_path, {**META, "image_size": [128, 64]})


def test_a_new_gallery_records_the_spec_and_refuses_another_preprocessing(tmp_path, backend):
    store = open_store(backend, tmp_path, gallery_meta(SPEC, 16))
    assert store.spec == SPEC and store.meta["spec"]["format_version"] == 2
    store.close()
    other_mean = replace(SPEC, preprocessing=Preprocessing(mean=(0.5, 0.5, 0.5)))
    with pytest.raises(UsageError, match=r"preprocessing=.*0\.485.*features would not match"):
        open_store(backend, tmp_path, gallery_meta(other_mean, 16))
    with pytest.raises(UsageError, match=r"weights_sha256='ab"):
        open_store(backend, tmp_path, gallery_meta(replace(SPEC, weights_sha256="cd" * 32), 16))
    again = open_store(backend, tmp_path, gallery_meta(SPEC, 16))
    assert again.spec == SPEC
    again.close()


def test_a_gallery_from_before_the_spec_opens_with_a_spec_checked_on_what_it_recorded(
    tmp_path, backend
):
    open_store(backend, tmp_path, META).close()  # created by an earlier omnireid
    # the same model, whatever mean it has: the old gallery did not record one
    other_mean = replace(SPEC, preprocessing=Preprocessing(mean=(0.5, 0.5, 0.5)))
    store = open_store(backend, tmp_path, gallery_meta(other_mean, 16))
    assert store.spec == ModelSpec(
        "osnet_x0_25", feature_dim=16, preprocessing=Preprocessing(256, 128),
        weights_sha256="ab" * 32,
    )  # fmt: skip
    store.close()
    smaller = replace(SPEC, preprocessing=Preprocessing(128, 64))
    with pytest.raises(UsageError, match=r"image_size=\[256, 128\]"):
        open_store(backend, tmp_path, gallery_meta(smaller, 16))
    assert gallery_spec({"dim": 16}) is None  # a gallery that recorded no model


def test_sqlite_holds_each_feature_as_float32_and_the_index_is_rebuilt_from_it(tmp_path):
    store = open_store("faiss", tmp_path, META)
    feats = unit_rows(3, 16, seed=6)
    store.add(entries(3), feats)
    store.close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = db.execute("SELECT id, feature, labels FROM entries ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == ["p0", "p1", "p2"]
    np.testing.assert_allclose(
        np.stack([np.frombuffer(r[1], "<f4") for r in rows]), feats, atol=1e-6
    )
    assert json.loads(rows[1][2]) == {"n": "1"}
    db.execute("UPDATE entries SET feature = X'00' WHERE id = 'p1'")  # damage one row
    db.commit()
    db.close()
    with pytest.raises(IndexFileError, match="'p1' has a damaged feature"):
        open_store("faiss", tmp_path, META)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    (tmp_path / DB_FILE).write_bytes(b"not a database" * 100)
    with pytest.raises(IndexFileError, match="not a usable gallery database"):
        open_store("faiss", tmp_path, META)


def test_an_index_built_by_omnireid_index_build_is_imported(tmp_path):
    from omnireid.deploy.index import GalleryIndex
    from omnireid.serve.importing import import_index

    feats = unit_rows(5, 16, seed=9)
    paths = [f"/data/{i:04d}_c{i % 2 + 1}s1_000100_01.jpg" for i in range(5)]
    ids = dict(pids=[3, 3, 4, -1, 5], camids=[0, 1, 0, -1, 1])
    built = GalleryIndex.build(feats, paths, **ids, spec=SPEC, extra={"weights": "w.pt"})
    built.save(tmp_path)
    store = open_store("faiss", tmp_path, META)  # the service's gallery beside the index files
    assert import_index(store, tmp_path) == 5
    entry = store.search(feats[[3]], k=1)[0][0].entry
    assert entry == Entry("index-3", labels={"path": paths[3]})  # unknown pid, camera: none
    assert store.get("index-1") == Entry("index-1", camera=1, labels={"path": paths[1], "pid": "3"})
    store.close()
    for key, value, reason in [
        ("weights_sha256", "ef" * 32, "built with other weights"),
        ("image_size", [128, 64], r"features of \[256, 128\] inputs"),
    ]:
        elsewhere = open_store("faiss", tmp_path / key, {**META, key: value})
        with pytest.raises(UsageError, match=reason):
            import_index(elsewhere, tmp_path)
        assert len(elsewhere) == 0
        elsewhere.close()


def test_a_batch_of_queries_gets_what_each_query_gets_alone(tmp_path):
    store = FaissStore(tmp_path, META, chunk=32)  # 6 int8 chunks and a float32 tail of 8
    feats = unit_rows(200, 16, seed=12)
    store.add(entries(200), feats)
    queries = unit_rows(8, 16, seed=13)
    batched = store.search(queries, k=5)
    expected = np.argsort(-(queries.astype(np.float64) @ feats.T.astype(np.float64)), axis=1)
    for q, row, best in zip(queries, batched, expected, strict=True):
        alone = store.search(q[None], k=5)[0]
        assert [h.entry.id for h in row] == [h.entry.id for h in alone]
        assert [h.entry.id for h in row] == [f"p{i}" for i in best[:5]]
        assert [h.score for h in row] == [h.score for h in alone]  # bit for bit
    store.close()
    store = FaissStore(tmp_path, META, chunk=32)  # reopened: every row in int8 chunks
    assert [[h.entry.id for h in r] for r in store.search(queries, k=5)] == [
        [h.entry.id for h in r] for r in batched
    ]
    store.close()


class _Planted:
    """A pickle that, when loaded, creates ``marker``: what anyone able to write the folder
    of a local-mode Qdrant could plant in place of a point."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_local_qdrant_is_refused_unless_asked_for_as_it_unpickles_its_folder(tmp_path):
    import pickle

    store = open_store("qdrant", tmp_path, META)
    store.add(entries(1), unit_rows(1, 16, seed=0))
    store.close()
    storage = tmp_path / "qdrant" / "collection" / "omnireid_gallery" / "storage.sqlite"
    marker = tmp_path / "code-ran"
    db = sqlite3.connect(storage)
    db.execute("UPDATE points SET point = ?", (pickle.dumps(_Planted(marker)),))
    db.commit()
    db.close()
    with pytest.raises(UsageError, match=r"local mode unpickles .*qdrant .*--unsafe-local-qdrant"):
        stores.open_store("qdrant", tmp_path, META)
    assert not marker.exists()
    with pytest.raises(AttributeError):  # what the flag risks: the planted code runs
        open_store("qdrant", tmp_path, META)
    assert marker.exists()
    open_store("faiss", tmp_path / "other", META).close()  # the failed open let its lock go


def test_one_store_per_folder_whatever_the_backend(tmp_path):
    first = open_store("faiss", tmp_path, META)
    refused = rf"gallery {re.escape(str(tmp_path.resolve()))} is in use by another server "
    refused += rf"\(process {os.getpid()} on host "
    for backend in ("faiss", "qdrant"):
        with pytest.raises(UsageError, match=refused):
            open_store(backend, tmp_path, META)
    first.add(entries(1), unit_rows(1, 16, seed=0))  # the holder is unaffected
    first.close()
    again = open_store("faiss", tmp_path, META)
    assert again.get("p0") == entries(1)[0]
    again.close()


def built_index(folder, seed: int = 9) -> np.ndarray:
    """An `omnireid index build` index of 5 entries in ``folder``; its features."""
    from omnireid.deploy.index import GalleryIndex

    feats = unit_rows(5, 16, seed=seed)
    paths = [f"/data/{i:04d}_c1s1_000100_01.jpg" for i in range(5)]
    index = GalleryIndex.build(feats, paths, pids=[1, 2, 3, 4, 5], spec=SPEC)
    index.save(folder)
    return feats


def test_an_index_is_imported_once_and_what_was_deleted_stays_deleted(tmp_path, backend):
    from omnireid.serve.importing import import_index

    built_index(tmp_path)
    store = open_store(backend, tmp_path, META)
    assert import_index(store, tmp_path) == 5 and len(store) == 5
    for i in range(5):
        assert store.remove(f"index-{i}")
    store.close()
    store = open_store(backend, tmp_path, META)  # a restart
    assert import_index(store, tmp_path) == 0
    assert len(store) == 0 and store.get("index-0") is None
    assert store.meta["index_import"]["entries"] == 5 and store.meta["index_import"]["complete"]
    store.close()


def test_an_import_cut_short_is_finished_and_another_index_refused(tmp_path, backend):
    from omnireid.serve.importing import import_index
    from omnireid.serve.store import IMPORT_KEY

    feats = built_index(tmp_path)
    digest = json.loads((tmp_path / "header.json").read_text())["header_sha256"]
    store = open_store(backend, tmp_path, META)
    # what a crash leaves when the points were written and the record of the end was not
    store.record(IMPORT_KEY, {"sha256": digest, "complete": False, "entries": 5})
    store.add([Entry("index-0")], feats[:1])
    store.close()
    store = open_store(backend, tmp_path, META)
    assert import_index(store, tmp_path) == 4 and len(store) == 5
    hits = store.search(feats, k=1)
    assert [row[0].entry.id for row in hits] == [f"index-{i}" for i in range(5)]
    assert import_index(store, tmp_path) == 0
    built_index(tmp_path, seed=10)  # another index written into the folder
    with pytest.raises(UsageError, match="another index than the one this gallery imported"):
        import_index(store, tmp_path)
    assert len(store) == 5
    store.close()


def test_a_gallery_from_before_import_records_does_not_import_again(tmp_path, caplog):
    """An earlier omnireid imported the index on the first start and recorded nothing: its
    index is taken as imported, so entries deleted since do not come back."""
    from omnireid.serve.importing import import_index

    built_index(tmp_path)
    open_store("faiss", tmp_path, META).close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    db.execute("DELETE FROM meta WHERE key = 'index_import'")  # as an earlier version wrote it
    db.commit()
    db.close()
    store = open_store("faiss", tmp_path, META)
    assert import_index(store, tmp_path) == 0 and len(store) == 0
    assert "predates import records" in caplog.text
    store.close()
    store = open_store("faiss", tmp_path, META)
    assert store.meta["index_import"]["complete"] and import_index(store, tmp_path) == 0
    store.close()
