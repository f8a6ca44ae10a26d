"""GRID parser: probe/gallery folders and the trainIdxAll splits of features_and_partitions.mat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from omnireid.data.datasets import DatasetLayoutError, load_dataset
from omnireid.data.datasets.grid import grid

PROBE = [(1, 1), (2, 2), (3, 3), (4, 4)]  # (pid, camera 1..8)
GALLERY = [(1, 5), (2, 6), (3, 7), (4, 8), (0, 6), (0, 7), (0, 8)]  # pid 0: distractors
TRAIN_IDS = [[1, 2], [3, 4], [1, 3], [2, 4], [1, 4], [2, 3], [1, 2], [3, 4], [1, 3], [2, 4]]


def write_folder(folder: Path, entries: list[tuple[int, int]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (pid, cam) in enumerate(entries):
        Image.new("RGB", (4, 8)).save(folder / f"{pid:04d}_{cam}_{25004 + i}_107_32_130_413.jpeg")


def write_partitions(path: Path, as_struct: bool = False) -> None:
    """``trainIdxAll``: a 1x10 cell of train pid arrays, or of structs holding them third."""
    cells = np.empty((1, 10), dtype=object)
    for i, ids in enumerate(TRAIN_IDS):
        ids_row = np.array([ids], dtype=float)
        cells[0, i] = {"a": np.zeros(1), "b": np.zeros(1), "c": ids_row} if as_struct else ids_row
    savemat(path, {"trainIdxAll": cells})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "underground_reid"
    write_folder(base / "probe", PROBE)
    write_folder(base / "gallery", GALLERY)
    write_partitions(base / "features_and_partitions.mat")
    return tmp_path


def test_split_sizes_and_distractors(root: Path) -> None:
    ds = grid(root)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (4, 2, 5)
    assert sorted({s.pid for s in ds.train}) == [0, 1]  # pids 1 and 2 relabelled
    assert [s.pid for s in ds.query] == [3, 4]
    assert sorted(s.pid for s in ds.gallery) == [0, 0, 0, 3, 4]  # distractors stay
    assert {s.camid for s in ds.gallery} == {5, 6, 7}
    assert min(s.camid for s in ds.query) == 2


def test_split_choice_struct_cells_and_registry(root: Path) -> None:
    assert [s.pid for s in grid(root, split_id=1).query] == [1, 2]
    write_partitions(root / "underground_reid" / "features_and_partitions.mat", as_struct=True)
    assert [s.pid for s in grid(root / "underground_reid", split_id=4).query] == [2, 3]
    assert load_dataset("grid", root).num_train_pids == 2
    with pytest.raises(ValueError, match=r"split_id must be in 0\.\.9"):
        grid(root, split_id=10)


def test_missing_files(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="underground_reid"):
        grid(tmp_path / "nowhere")
    mat = root / "underground_reid" / "features_and_partitions.mat"
    savemat(mat, {"other": np.zeros(1)})
    with pytest.raises(DatasetLayoutError, match=r"no variable trainIdxAll; it holds \['other'\]"):
        grid(root)
    mat.unlink()
    with pytest.raises(DatasetLayoutError, match="split file"):
        grid(root)


def test_naming_and_unknown_train_ids(root: Path) -> None:
    write_folder(root / "underground_reid" / "probe", [(9, 9)])
    with pytest.raises(DatasetLayoutError, match=r"camera 9 outside 1\.\.8"):
        grid(root)
    for img in (root / "underground_reid" / "probe").glob("0009_*"):
        img.unlink()
    Image.new("RGB", (4, 8)).save(root / "underground_reid" / "gallery" / "distractor.jpeg")
    with pytest.raises(DatasetLayoutError, match="naming scheme"):
        grid(root)
    (root / "underground_reid" / "gallery" / "distractor.jpeg").unlink()
    for img in (root / "underground_reid" / "probe").glob("0002_*"):
        img.unlink()
    with pytest.raises(DatasetLayoutError, match=r"train pids with no probe image: \[2\]"):
        grid(root)
