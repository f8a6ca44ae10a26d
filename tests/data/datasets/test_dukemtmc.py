"""DukeMTMC-reID parser on a fake copy of the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from omnireid.data.datasets import DatasetLayoutError, load_dataset
from omnireid.data.datasets.dukemtmc import dukemtmc

TRAIN = [
    "0001_c1_f0046182.jpg",
    "0001_c2_f0046190.jpg",
    "0003_c8_f0000001.jpg",
    "0005_c3_f0001000.jpg",
    "0005_c3_f0001010.jpg",
]
QUERY = ["0002_c1_f0000100.jpg", "0004_c2_f0000200.jpg"]
GALLERY = ["0002_c5_f0000300.jpg", "0004_c6_f0000400.jpg", "0009_c7_f0000500.jpg"]


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (4, 8)).save(folder / name)


def write_duke(root: Path) -> Path:
    """A tiny copy of the official DukeMTMC-reID layout under ``root``; returns ``root``."""
    base = root / "DukeMTMC-reID"
    write_images(base / "bounding_box_train", TRAIN)
    write_images(base / "query", QUERY)
    write_images(base / "bounding_box_test", GALLERY)
    return root


@pytest.fixture
def duke(tmp_path: Path) -> Path:
    return write_duke(tmp_path)


def test_splits_ids_and_cameras(duke: Path) -> None:
    ds = dukemtmc(duke)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (5, 2, 3)
    assert sorted({s.pid for s in ds.train}) == [0, 1, 2]  # 0001, 0003, 0005 relabelled
    assert {s.camid for s in ds.train} == {0, 1, 7, 2}
    assert {s.pid for s in ds.query} == {2, 4}
    assert {s.pid for s in ds.gallery} == {2, 4, 9}  # the gallery-only id 9 is kept
    assert max(s.camid for s in ds.gallery) == 6


def test_root_may_be_the_dataset_folder_and_registry(duke: Path) -> None:
    assert len(dukemtmc(duke / "DukeMTMC-reID").train) == 5
    assert load_dataset("dukemtmcreid", duke).num_train_pids == 3


def test_missing_folder(duke: Path) -> None:
    for img in (duke / "DukeMTMC-reID" / "query").iterdir():
        img.unlink()
    (duke / "DukeMTMC-reID" / "query").rmdir()
    with pytest.raises(DatasetLayoutError, match="query"):
        dukemtmc(duke)


def test_wrong_naming_and_camera(duke: Path) -> None:
    write_images(duke / "DukeMTMC-reID" / "bounding_box_train", ["person1.jpg"])
    with pytest.raises(DatasetLayoutError, match="naming scheme"):
        dukemtmc(duke)
    (duke / "DukeMTMC-reID" / "bounding_box_train" / "person1.jpg").unlink()
    write_images(duke / "DukeMTMC-reID" / "query", ["0002_c9_f0000001.jpg"])
    with pytest.raises(DatasetLayoutError, match=r"camera 9 outside 1\.\.8"):
        dukemtmc(duke)


def test_empty_split(duke: Path) -> None:
    for img in (duke / "DukeMTMC-reID" / "bounding_box_test").iterdir():
        img.unlink()
    with pytest.raises(DatasetLayoutError, match="gallery"):
        dukemtmc(duke)
