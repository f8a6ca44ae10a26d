"""CUHK01 parser: PPPPIII.png files in campus/, seeded 485/486-style splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from omnireid.data.datasets import DatasetLayoutError, load_dataset
from omnireid.data.datasets.cuhk01 import cuhk01


@pytest.fixture
def root(tmp_path: Path) -> Path:
    campus = tmp_path / "campus"
    campus.mkdir()
    for pid in range(1, 6):  # 5 ids x 4 images: 2 train ids, 3 test ids
        for index in range(1, 5):
            Image.new("RGB", (4, 8)).save(campus / f"{pid:04d}{index:03d}.png")
    return tmp_path


def test_split_sizes_and_cameras(root: Path) -> None:
    ds = load_dataset("cuhk01", root)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (8, 6, 6)
    assert sorted({s.pid for s in ds.train}) == [0, 1]
    assert {s.camid for s in ds.train} == {0, 1}
    assert {s.camid for s in ds.query} == {0} and {s.camid for s in ds.gallery} == {1}
    assert {s.pid for s in ds.query} == {s.pid for s in ds.gallery}
    assert {Path(s.path).name[4:] for s in ds.query} == {"001.png", "002.png"}


def test_splits_saved_reproducible(root: Path) -> None:
    first = cuhk01(root, split_id=2, seed=7)
    saved = json.loads((root / "campus" / "splits.json").read_text())
    assert saved["seed"] == 7 and saved["num_ids"] == 5 and len(saved["splits"]) == 10
    assert [len(s["train"]) for s in saved["splits"]] == [2] * 10
    assert cuhk01(root, split_id=2, seed=7) == first  # read back
    (root / "campus" / "splits.json").unlink()
    assert cuhk01(root / "campus", split_id=2, seed=7) == first  # redrawn: same seed, same split


def test_wrong_naming(root: Path) -> None:
    Image.new("RGB", (4, 8)).save(root / "campus" / "0001005.png")
    Image.new("RGB", (4, 8)).save(root / "campus" / "person.png")
    with pytest.raises(DatasetLayoutError, match=r"2 file\(s\) .* e\.g\. \['0001005.png'"):
        cuhk01(root)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="campus"):
        cuhk01(tmp_path)


def test_too_few_ids(tmp_path: Path) -> None:
    (tmp_path / "campus").mkdir()
    Image.new("RGB", (4, 8)).save(tmp_path / "campus" / "0001001.png")
    with pytest.raises(DatasetLayoutError, match="at least 2 ids"):
        cuhk01(tmp_path)
