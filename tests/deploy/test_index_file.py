"""The index directory format: what is written, and what reading refuses."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from omnireid.deploy.index_file import (
    FORMAT_VERSION,
    header_digest,
    read_header,
    read_index_dir,
    write_index_dir,
)
from omnireid.errors import IndexFileError


def _write(tmp_path):
    index = faiss.IndexFlatIP(4)
    index.add(np.eye(4, dtype=np.float32))
    metadata = {
        "paths": np.asarray(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]),
        "pids": np.array([1, 1, 2, -1]),
        "camids": np.array([0, 1, 0, -1]),
        "timestamps": np.array([0.5, np.nan, 2.0, 3.0]),
    }
    params = {"nlist": None, "nprobe": 8, "hnsw_m": 32, "ef_construction": 40, "ef_search": 16}
    header = {"dim": 4, "metric": "l2", "kind": "flat", "params": params}
    return write_index_dir(tmp_path / "idx", index, metadata, header), metadata


def test_round_trip_keeps_the_vectors_and_metadata(tmp_path):
    out, metadata = _write(tmp_path)
    header = read_header(out)
    assert (header["version"], header["dim"]) == (FORMAT_VERSION, 4)
    assert header["header_sha256"] == header_digest(header)
    index, read = read_index_dir(out, header)
    assert index.ntotal == 4 and index.reconstruct(2).tolist() == [0.0, 0.0, 1.0, 0.0]
    for name, values in metadata.items():
        np.testing.assert_array_equal(read[name], values)


def test_one_changed_byte_in_a_data_file_is_refused(tmp_path):
    out, _ = _write(tmp_path)
    raw = bytearray((out / "index.faiss").read_bytes())
    raw[-1] ^= 1
    (out / "index.faiss").write_bytes(bytes(raw))
    with pytest.raises(IndexFileError, match=r"index\.faiss is missing or corrupt"):
        read_index_dir(out, read_header(out))


def test_a_header_that_is_not_ours_or_not_json_is_refused(tmp_path):
    out, _ = _write(tmp_path)
    (out / "header.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(IndexFileError, match="is not an omnireid-gallery-index header"):
        read_header(out)
    (out / "header.json").write_text("{not json")
    with pytest.raises(IndexFileError, match="corrupt"):
        read_header(out)
    with pytest.raises(IndexFileError, match="not a gallery index"):
        read_header(tmp_path / "elsewhere")
