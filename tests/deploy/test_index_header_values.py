"""A gallery index whose header and files agree with their checksums but hold values no writer
writes (a header rewritten with its checksums recomputed, or a writer's bug) is refused with
the file and the value named: never a crash, never a wrong result (a NaN camera id printed as
-9223372036854775808, a "no" read as true)."""

import json
from pathlib import Path

import numpy as np
import pytest

from omnireid.cli import main
from omnireid.deploy.index import GalleryIndex
from omnireid.deploy.index_file import FILES, header_digest
from omnireid.errors import IndexFileError
from omnireid.models.weights import file_sha256


def resealed(folder: Path, header_change=None, metadata_change=None) -> Path:
    """``folder``'s index changed as given, every checksum recomputed to match."""
    if metadata_change is not None:
        with np.load(folder / "metadata.npz") as m:
            arrays = dict(m)
        metadata_change(arrays)
        np.savez(folder / "metadata.npz", **arrays)
    header = json.loads((folder / "header.json").read_text())
    if header_change is not None:
        header_change(header)
    header["files"] = {name: file_sha256(folder / name) for name in FILES}
    header["header_sha256"] = header_digest(header)
    (folder / "header.json").write_text(json.dumps(header))
    return folder


@pytest.fixture
def index_dir(tmp_path) -> Path:
    feats = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
    index = GalleryIndex.build(feats, [f"{i:04d}_c1s1_000001_01.jpg" for i in range(6)])
    return index.save(tmp_path / "index")


def _set(key, value):
    return lambda header: header.update({key: value})


def _param(key, value):
    return lambda header: header["params"].update({key: value})


def _array(key, make):
    return lambda arrays: arrays.update({key: make(arrays[key])})


@pytest.mark.parametrize(
    ("header_change", "metadata_change", "reason"),
    [
        (_set("dim", "16"), None, 'header.json: dim is "16", it must be an integer >= 1'),
        (_set("dim", True), None, "header.json: dim is true, it must be an integer >= 1"),
        (_set("metric", "cos"), None, "header.json: metric is \"cos\", it must be one of"),
        (_set("kind", "lsh"), None, "header.json: kind is \"lsh\", it must be one of"),
        (_set("normalize", "no"), None, 'header.json: normalize is "no", it must be true or false'),
        (_set("count", -1), None, "header.json: count is -1, it must be an integer >= 0"),
        (_set("params", [1, 2]), None, "header.json: params is [1, 2], it must be an object"),
        (_param("nprobe", -5), None, "params.nprobe is -5, it must be an integer >= 1"),
        (_param("hnsw_m", 0), None, "header.json: params.hnsw_m is 0, it must be an integer >= 2"),
        (_set("count", 2), None, "header.json: count is 2, the index holds 6 features"),
        (None, _array("pids", lambda a: a[:3]), "pids has shape (3,), the index holds 6"),
        (None, _array("camids", lambda a: np.full(len(a), np.nan)), "camids holds float64 values"),
        (None, _array("paths", lambda a: np.arange(len(a))), "paths holds int64 values"),
    ],
)  # fmt: skip
def test_values_no_writer_writes_are_refused_by_name(
    index_dir, header_change, metadata_change, reason
):
    resealed(index_dir, header_change, metadata_change)
    with pytest.raises(IndexFileError) as caught:
        GalleryIndex.load(index_dir)
    assert str(index_dir) in str(caught.value) and reason in str(caught.value)


def test_the_command_line_refuses_them_in_one_line(index_dir, toy_weights, tiny_world, capsys):
    resealed(index_dir, _param("ef_search", 0))
    query = sorted((tiny_world / "query").glob("*.jpg"))[0]
    args = ["index", "query", "--index", str(index_dir), "--query", str(query)]
    assert main([*args, "--weights", str(toy_weights)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert (
        err.strip().splitlines()[-1].endswith("params.ef_search is 0, it must be an integer >= 1")
    )


@pytest.mark.parametrize("key", ["dim", "metric", "kind", "params"])
def test_a_header_without_a_required_value_is_refused_by_name(index_dir, key):
    resealed(index_dir, lambda header: header.pop(key))
    with pytest.raises(IndexFileError, match=rf"header.json: no {key}"):
        GalleryIndex.load(index_dir)
