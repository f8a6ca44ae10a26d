"""VIPeR parser: paired cam_a/cam_b images, seeded 50/50 splits saved to splits.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from omnireid.data.datasets import DatasetLayoutError, load_dataset
from omnireid.data.datasets.viper import make_splits, viper

NUM_IDS = 6


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for cam, angle in (("cam_a", 45), ("cam_b", 90)):
        folder = tmp_path / "VIPeR" / cam
        folder.mkdir(parents=True)
        for i in range(NUM_IDS):
            Image.new("RGB", (4, 8)).save(folder / f"{i * 2:03d}_{angle}.bmp")
    return tmp_path


def test_split_sizes_and_cameras(root: Path) -> None:
    ds = viper(root)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (6, 3, 3)
    assert sorted({s.pid for s in ds.train}) == [0, 1, 2]
    assert {s.camid for s in ds.train} == {0, 1}
    assert {s.camid for s in ds.query} == {0} and {s.camid for s in ds.gallery} == {1}
    assert [s.pid for s in ds.query] == [s.pid for s in ds.gallery]
    assert all("cam_a" in s.path for s in ds.query)
    assert not {s.path for s in ds.train} & {s.path for s in ds.query + ds.gallery}


def test_splits_saved_and_read_back(root: Path) -> None:
    first = viper(root, split_id=3)
    saved = json.loads((root / "VIPeR" / "splits.json").read_text())
    assert saved["seed"] == 0 and saved["num_ids"] == NUM_IDS and len(saved["splits"]) == 10
    assert saved["splits"][3]["test"] == [s.pid for s in first.query]
    assert viper(root / "VIPeR", split_id=3) == first  # ROOT may be the VIPeR folder itself


def test_seeding_is_reproducible() -> None:
    assert make_splits(NUM_IDS, seed=1) == make_splits(NUM_IDS, seed=1)
    assert make_splits(632, seed=1) != make_splits(632, seed=2)
    split = make_splits(632, seed=0)[0]
    assert len(split["train"]) == len(split["test"]) == 316


def test_saved_seed_must_match(root: Path) -> None:
    viper(root, seed=0)
    with pytest.raises(ValueError, match="seed 0, not 5"):
        viper(root, seed=5)
    (root / "VIPeR" / "splits.json").unlink()
    assert load_dataset("viper", root).name == "viper"
    with pytest.raises(ValueError, match=r"split_id must be in 0\.\.9"):
        viper(root, split_id=10)


def test_layout_errors(root: Path, tmp_path: Path) -> None:
    Image.new("RGB", (4, 8)).save(root / "VIPeR" / "cam_b" / "999_90.bmp")
    with pytest.raises(DatasetLayoutError, match=r"found 6 in .* and 7 in"):
        viper(root)
    with pytest.raises(DatasetLayoutError, match="VIPeR"):
        viper(tmp_path / "nowhere")
    (root / "VIPeR" / "splits.json").write_text('{"splits": []}')
    (root / "VIPeR" / "cam_b" / "999_90.bmp").unlink()
    with pytest.raises(DatasetLayoutError, match="not a splits file"):
        viper(root)
