import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnireid.cli import main
from omnireid.data.images import parse_market_name
from omnireid.deploy.index import GalleryIndex
from omnireid.deploy.index_file import FORMAT_VERSION, header_digest, read_header
from omnireid.errors import IndexFileError
from omnireid.evaluation.rerank import rerank
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing
from omnireid.visualize.gallery import strip_size
from tests.deploy.helpers import trained_like


def normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(centres: np.ndarray, n: int, noise: float, seed: int) -> np.ndarray:
    """``(n, D)`` features around ``(ids, D)`` centres; row ``i`` is identity ``i % ids``."""
    rng = np.random.default_rng(seed)
    x = centres[np.arange(n) % len(centres)] + noise * rng.standard_normal((n, centres.shape[1]))
    return normalised(x)


def _spec(size: tuple[int, int] = (256, 128), sha256: str = "") -> ModelSpec:
    pre = Preprocessing(*size, mean=(0.5, 0.5, 0.5))
    return ModelSpec("osnet_x0_25", feature_dim=16, preprocessing=pre, weights_sha256=sha256)


def names(n: int) -> list[str]:
    return [f"img{i}.jpg" for i in range(n)]


@pytest.fixture
def gallery() -> np.ndarray:
    return normalised(np.random.default_rng(0).standard_normal((300, 16)))


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_search_equals_brute_force(gallery, metric):
    queries = normalised(np.random.default_rng(1).standard_normal((7, 16)))
    index = GalleryIndex.build(gallery, names(300), faiss_metric=metric, pids=np.arange(300) // 3)
    result = index.search(queries, k=5)
    sim = queries @ gallery.T
    expected = np.argsort(-sim, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(result.indices, expected)
    want = np.take_along_axis(sim if metric == "ip" else 2 - 2 * sim, expected, 1)
    np.testing.assert_allclose(result.scores, want, atol=1e-5)
    assert result.higher_is_better == (metric == "ip")
    np.testing.assert_array_equal(result.pids, expected // 3)
    assert result.paths[2][0] == f"img{expected[2, 0]}.jpg"
    assert np.isnan(result.timestamps).all() and (result.camids == -1).all()


def test_features_are_normalised_on_the_way_in(gallery):
    index = GalleryIndex.build(3.0 * gallery, names(300))
    result = index.search(5.0 * gallery[:3], k=1)
    np.testing.assert_array_equal(result.indices[:, 0], [0, 1, 2])
    np.testing.assert_allclose(result.scores[:, 0], 1.0, atol=1e-5)


def test_bad_input_is_refused(gallery):
    index = GalleryIndex.build(gallery, names(300))
    with pytest.raises(ValueError, match=r"queries must be \(N, 16\), got shape \(2, 8\)"):
        index.search(np.ones((2, 8)))
    with pytest.raises(ValueError, match="got 300 features but 2 paths"):
        GalleryIndex.build(gallery, names(2))
    with pytest.raises(ValueError, match="unknown index kind 'lsh'"):
        GalleryIndex(16, kind="lsh")
    with pytest.raises(ValueError, match="empty"):
        GalleryIndex(16).search(gallery[:1])


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip(tmp_path, gallery, kind):
    stamps = np.arange(300) * 0.5
    index = GalleryIndex.build(
        gallery,
        names(300),
        kind=kind,
        pids=np.arange(300) % 7,
        camids=np.arange(300) % 3,
        timestamps=stamps,
        spec=_spec((64, 32)),
    )
    before = index.search(gallery[:10], k=4)
    index.save(tmp_path / "idx")
    loaded = GalleryIndex.load(tmp_path / "idx", expect_dim=16, expect_arch="osnet_x0_25")
    after = loaded.search(gallery[:10], k=4)
    np.testing.assert_array_equal(after.indices, before.indices)
    np.testing.assert_array_equal(after.pids, before.pids)
    np.testing.assert_array_equal(after.camids, before.camids)
    np.testing.assert_array_equal(after.timestamps, before.timestamps)
    assert after.paths == before.paths
    assert (loaded.kind, loaded.arch, loaded.input_size, len(loaded)) == (
        kind,
        "osnet_x0_25",
        (64, 32),
        300,
    )
    header = json.loads((tmp_path / "idx" / "header.json").read_text())
    assert header["version"] == FORMAT_VERSION and header["count"] == 300 and header["dim"] == 16
    metadata = np.load(tmp_path / "idx" / "metadata.npz", allow_pickle=False)
    assert metadata["paths"][5] == "img5.jpg"


@pytest.fixture
def saved(tmp_path, gallery) -> Path:
    return GalleryIndex.build(gallery, names(300), spec=_spec()).save(tmp_path / "idx")


def test_refuses_wrong_dim_and_arch(saved):
    with pytest.raises(IndexFileError, match="holds 16-d features but the extractor gives 512-d"):
        GalleryIndex.load(saved, expect_dim=512)
    with pytest.raises(IndexFileError, match=r"built with arch 'osnet_x0_25'.*'osnet_x1_0'"):
        GalleryIndex.load(saved, expect_arch="osnet_x1_0")


def test_the_header_carries_the_whole_spec(tmp_path, gallery):
    saved = GalleryIndex.build(gallery, names(300), spec=_spec((64, 32), "ab" * 32))
    saved.save(tmp_path / "idx")
    header = read_header(tmp_path / "idx")
    assert header["spec"]["format_version"] == 2 and "arch" not in header
    loaded = GalleryIndex.load(tmp_path / "idx")
    assert loaded.spec == _spec((64, 32), "ab" * 32)  # mean 0.5 too, not only the size
    assert (loaded.arch, loaded.input_size) == ("osnet_x0_25", (64, 32))
    unknown = GalleryIndex.build(gallery, names(300)).save(tmp_path / "plain")
    assert GalleryIndex.load(unknown).spec is None and GalleryIndex.load(unknown).arch is None


def _as_format_2(saved: Path, size, arch="osnet_x0_25") -> None:
    """Rewrite a saved header as `omnireid index build` wrote it before the spec (format 2)."""

    def to_v2(h):
        h.pop("spec")
        weights = {"path": "/runs/market", "sha256": "cd" * 32}
        h.update(version=2, arch=arch, image_size=size, extra={"weights": weights, "note": 1})

    _edit_header(saved, to_v2)


def test_a_format_2_index_still_loads_into_a_spec(saved):
    _as_format_2(saved, [128, 64])
    header = read_header(saved)
    assert header["extra"] == {"weights": "/runs/market", "note": 1}
    loaded = GalleryIndex.load(saved, expect_dim=16, expect_arch="osnet_x0_25")
    spec = loaded.spec
    assert (spec.arch, spec.feature_dim, spec.weights_sha256) == ("osnet_x0_25", 16, "cd" * 32)
    assert spec.preprocessing == Preprocessing(128, 64)  # format 2 recorded the size only
    assert len(loaded) == 300 and loaded.input_size == (128, 64)
    with pytest.raises(IndexFileError, match="built with arch 'osnet_x0_25'"):
        GalleryIndex.load(saved, expect_arch="osnet_x1_0")


def test_a_format_2_header_is_checked_before_it_is_migrated(saved):
    _as_format_2(saved, [256, 128])
    _edit_header(saved, lambda h: h.update(image_size=[128, 64]), resign=False)
    with pytest.raises(IndexFileError, match="changed after the index was written"):
        GalleryIndex.load(saved)
    _edit_header(saved, lambda h: h.update(version=2))  # re-signed: reads again
    assert GalleryIndex.load(saved).input_size == (128, 64)


def _edit_header(saved: Path, change, resign: bool = True) -> None:
    header = json.loads((saved / "header.json").read_text())
    change(header)
    if resign:
        header["header_sha256"] = header_digest(header)
    (saved / "header.json").write_text(json.dumps(header))


def test_refuses_future_version(saved):
    _edit_header(saved, lambda h: h.update(version=FORMAT_VERSION + 1))
    with pytest.raises(IndexFileError, match=f"format version {FORMAT_VERSION + 1}.*upgrade"):
        GalleryIndex.load(saved)


def test_refuses_a_changed_header(tmp_path, gallery):
    saved = GalleryIndex.build(gallery, names(300), spec=_spec()).save(tmp_path / "idx")
    # one changed value (the query size) would silently change every result: refused
    _edit_header(saved, lambda h: h["spec"]["preprocessing"].update(height=128), resign=False)
    with pytest.raises(IndexFileError, match="changed after the index was written"):
        read_header(saved)
    # a header without the file checksums cannot be verified: refused too
    _edit_header(saved, lambda h: h.pop("files"))
    with pytest.raises(IndexFileError, match="cannot verify"):
        GalleryIndex.load(saved)


def test_a_version_downgrade_does_not_switch_the_checksum_off(tmp_path, gallery, capsys):
    """Format 1 had no header checksum: a header edited down to version 1 (checksum dropped)
    with another query size must not be read, nor a genuine format-1 header."""
    saved = GalleryIndex.build(gallery, names(300), spec=_spec()).save(tmp_path / "idx")

    def downgraded(h):
        h.update(version=1, image_size=[128, 64])
        h.pop("header_sha256")

    _edit_header(saved, downgraded, resign=False)
    with pytest.raises(IndexFileError, match=r"carries no header checksum.*rebuild the index"):
        GalleryIndex.load(saved)
    argv = ["index", "query", "--index", str(saved), "--query", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("omnireid index: error:")
    assert "header.json carries no header checksum" in err[0]
    # a version-1 header with a valid checksum (none was ever written so): only 2 and 3 are read
    _edit_header(saved, lambda h: h.update(version=1))
    with pytest.raises(IndexFileError, match="format version 1; this omnireid reads versions 2"):
        read_header(saved)
    # the version itself is covered by the checksum: editing it alone is caught
    _edit_header(saved, lambda h: h.update(version=FORMAT_VERSION))
    read_header(saved)
    _edit_header(saved, lambda h: h.update(version=1), resign=False)
    with pytest.raises(IndexFileError, match="changed after the index was written"):
        read_header(saved)


@pytest.mark.parametrize("damage", ["index", "metadata", "header", "missing"])
def test_refuses_corrupt_files(saved, damage):
    if damage == "index":
        data = (saved / "index.faiss").read_bytes()
        (saved / "index.faiss").write_bytes(data[: len(data) // 2])
        match = "index.faiss is missing or corrupt"
    elif damage == "metadata":
        (saved / "metadata.npz").write_bytes(b"not a zip")
        match = "metadata.npz is missing or corrupt"
    elif damage == "header":
        (saved / "header.json").write_text("{not json")
        match = "corrupt"
    else:
        shutil.rmtree(saved)
        match = "not a gallery index"
    with pytest.raises(IndexFileError, match=match):
        GalleryIndex.load(saved)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_recall_on_clustered_data(kind):
    centres = normalised(np.random.default_rng(0).standard_normal((200, 32)))
    feats = clustered(centres, 4000, noise=0.1, seed=1)
    queries = clustered(centres, 100, noise=0.1, seed=2)
    exact = GalleryIndex.build(feats, names(len(feats))).search(queries, 10).indices
    options = dict(nlist=64, nprobe=8) if kind == "ivf" else dict(hnsw_m=16, ef_search=64)
    found = GalleryIndex.build(feats, names(len(feats)), kind=kind, **options)
    found = found.search(queries, 10).indices
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
    assert recall >= 0.95
    # a single probed cell misses neighbours on unclustered data: the knob does something
    rng_feats = normalised(np.random.default_rng(3).standard_normal((4000, 32)))
    coarse = GalleryIndex.build(rng_feats, names(4000), kind="ivf", nlist=64, nprobe=1)
    fine = GalleryIndex.build(rng_feats, names(4000))
    a, b = coarse.search(rng_feats[:50], 10).indices, fine.search(rng_feats[:50], 10).indices
    assert np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]) < 0.9


def test_rerank_on_candidates_matches_direct_rerank(gallery):
    query = normalised(np.random.default_rng(5).standard_normal((1, 16)))
    index = GalleryIndex.build(gallery, names(300))
    result = index.search(query, k=5, rerank=True, candidates=40)
    cand = index.search(query, k=40).indices[0]
    g = gallery[cand]

    def sq(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    direct = rerank(sq(query, g), np.zeros((1, 1)), sq(g, g))[0]
    order = np.argsort(direct, kind="stable")[:5]
    np.testing.assert_array_equal(result.indices[0], cand[order])
    np.testing.assert_allclose(result.scores[0], direct[order], atol=1e-5)
    assert not result.higher_is_better
    assert set(result.indices[0]) <= set(cand)


def _not_blank(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as img:
        assert img.size == size
        pixels = np.asarray(img.convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # photos, frames and text, not an empty canvas


def test_cli_index_build_and_query(tmp_path, capsys, tiny_world, monkeypatch):
    weights = tmp_path / "w.pt"
    torch.save(trained_like("osnet_x0_25").state_dict(), weights)
    out = tmp_path / "index"
    gallery_dir = (tiny_world / "bounding_box_test").resolve()
    args = ["index", "build", "--weights", str(weights)]  # the architecture from the tensors
    args += ["--images", str(gallery_dir), "--out", str(out), "--height", "64", "--width", "32"]
    assert main(args) == 0
    assert "indexed 69 images (69 with a Market-style pid/camid)" in capsys.readouterr().out
    queries = sorted(str(p) for p in (tiny_world / "query").glob("*.jpg"))[:2]
    strip, page = tmp_path / "strip.png", tmp_path / "page.html"
    monkeypatch.chdir(tmp_path)  # stored paths are absolute: any working directory works
    cmd = ["index", "query", "--index", str(out), "--query", *queries, "--topk", "5"]
    assert main([*cmd, "--strip", str(strip), "--html", str(page)]) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 10 and [r[0] for r in rows[:5]] == ["1", "2", "3", "4", "5"]
    scores = [float(r[1]) for r in rows[:5]]
    assert scores == sorted(scores, reverse=True)
    assert all(Path(r[4]).parent == gallery_dir for r in rows)
    assert (int(rows[0][2]), int(rows[0][3])) == parse_market_name(rows[0][4])  # 0-based camid
    _not_blank(strip, strip_size(2, 5))
    html = page.read_text()
    assert html.count("data:image/jpeg;base64,") == 2 + 10 and 'src="http' not in html
    assert main([*cmd, "--rerank"]) == 0
    assert "distance" in capsys.readouterr().out
    # query features from other weights would not match the gallery's: refused
    other = tmp_path / "other.pt"
    other.write_bytes(b"other weights")
    query = ["index", "query", "--index", str(out), "--query", queries[0]]
    assert main([*query, "--weights", str(other)]) == 2
    assert "differs from the weights" in capsys.readouterr().err


@pytest.mark.parametrize("options", [{"hnsw_m": 1}, {"hnsw_m": 0}, {"nprobe": 0}, {"nlist": 0}])
def test_index_parameters_faiss_would_abort_on_are_refused(options):
    # FAISS aborts the process for HNSW M = 0 and crashes for M = 1: refuse before building
    with pytest.raises(ValueError, match=r"out of range|nlist must be"):
        GalleryIndex(8, kind="hnsw" if "hnsw_m" in options else "ivf", **options)
