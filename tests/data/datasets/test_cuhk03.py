"""CUHK03 new-protocol parser: config .mat files, extracted images, and cuhk-03.mat."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat, savemat

from omnireid.data.datasets import DATASETS, DatasetLayoutError, load_dataset
from omnireid.data.datasets.cuhk03 import cuhk03

# (camera pair, person, view, image) -> pid; persons 1-2 are train, 3-5 test.
FILES = {
    "1_001_1_01.png": 1, "1_001_2_06.png": 1, "1_002_1_01.png": 2, "1_002_2_06.png": 2,
    "1_003_1_01.png": 3, "1_003_2_06.png": 3, "1_004_1_01.png": 4, "1_004_2_06.png": 4,
    "2_001_1_01.png": 5, "2_001_2_06.png": 5,
}  # fmt: skip


def column(values: list[int]) -> np.ndarray:
    """A MATLAB column vector of doubles, as the official files hold."""
    return np.array(values, dtype=float).reshape(-1, 1)


def write_config(base: Path, kind: str) -> None:
    names = list(FILES)
    filelist = np.empty((len(names), 1), dtype=object)
    filelist[:, 0] = names
    savemat(
        base / f"cuhk03_new_protocol_config_{kind}.mat",
        {
            "filelist": filelist,
            "labels": column(list(FILES.values())),
            "camId": column([int(n.split("_")[2]) for n in names]),
            "train_idx": column([1, 2, 3, 4]),
            "query_idx": column([5, 7, 9]),
            "gallery_idx": column([6, 8, 10]),
        },
    )


def write_images(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in FILES:
        Image.new("RGB", (4, 8)).save(folder / name)


def write_raw_mat(path: Path) -> None:
    """A v5 ``cuhk-03.mat``: per camera pair a (persons, 10) cell array of (8, 4, 3) images."""
    pairs = np.empty((1, 2), dtype=object)
    for pair, persons in enumerate((4, 1)):
        cells = np.empty((persons, 10), dtype=object)
        for (person, column), _ in np.ndenumerate(cells):
            keep = column in (0, 5)  # one image per view, the rest empty
            value = 10 * person + column
            cells[person, column] = (
                np.full((8, 4, 3), value, np.uint8) if keep else np.zeros((0, 0))
            )
        pairs[0, pair] = cells
    savemat(path, {"detected": pairs, "labeled": pairs})


@pytest.fixture
def cuhk(tmp_path: Path) -> Path:
    base = tmp_path / "cuhk03"
    base.mkdir()
    write_config(base, "detected")
    write_images(base / "images_detected")
    return tmp_path


def test_new_protocol_splits(cuhk: Path) -> None:
    ds = cuhk03(cuhk)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (4, 3, 3)
    assert sorted({s.pid for s in ds.train}) == [0, 1]
    assert [s.pid for s in ds.query] == [3, 4, 5] == [s.pid for s in ds.gallery]
    assert {s.camid for s in ds.query} == {0} and {s.camid for s in ds.gallery} == {1}
    assert Path(ds.query[0].path).name == "1_003_1_01.png"


def test_labeled_and_registry(cuhk: Path) -> None:
    base = cuhk / "cuhk03"
    write_config(base, "labeled")
    write_images(base / "images_labeled")
    ds = load_dataset("cuhk03_labeled", base)  # ROOT may be the cuhk03 folder itself
    assert ds.name == "cuhk03_labeled" and "images_labeled" in ds.train[0].path
    assert DATASETS["cuhk03"](cuhk).name == "cuhk03"


def test_extracts_images_from_cuhk03_mat(tmp_path: Path) -> None:
    base = tmp_path / "cuhk03"
    (base / "cuhk03_release").mkdir(parents=True)
    write_config(base, "detected")
    write_raw_mat(base / "cuhk03_release" / "cuhk-03.mat")
    ds = cuhk03(tmp_path)
    names = sorted(p.name for p in (base / "images_detected").iterdir())
    assert names == sorted(FILES)  # 5 persons x 2 non-empty cells, named as the filelist
    assert len(ds.train) == 4
    pixels = np.asarray(Image.open(base / "images_detected" / "1_003_2_06.png"))
    assert pixels.shape == (8, 4, 3) and (pixels == 10 * 2 + 5).all()


def test_v73_mat_without_h5py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "cuhk03"
    base.mkdir()
    write_config(base, "detected")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(124, b" ") + b"\x00\x02IM"
    (base / "cuhk-03.mat").write_bytes(header + bytes(512))
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    with pytest.raises(ImportError, match="needs h5py"):
        cuhk03(tmp_path)


def test_classic_split_not_implemented(cuhk: Path) -> None:
    with pytest.raises(NotImplementedError, match="767/700"):
        cuhk03(cuhk, classic_split=True)


def test_missing_files(cuhk: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"cuhk03_new_protocol_config_detected\.mat"):
        cuhk03(tmp_path / "nowhere")
    with pytest.raises(DatasetLayoutError, match="labeled protocol file"):
        cuhk03(cuhk, labeled=True)
    (cuhk / "cuhk03" / "images_detected" / "2_001_2_06.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"1 image\(s\).*2_001_2_06.png"):
        cuhk03(cuhk)
    for img in (cuhk / "cuhk03" / "images_detected").iterdir():
        img.unlink()
    (cuhk / "cuhk03" / "images_detected").rmdir()
    with pytest.raises(DatasetLayoutError, match="found neither"):
        cuhk03(cuhk)


def test_bad_config(cuhk: Path) -> None:
    config = cuhk / "cuhk03" / "cuhk03_new_protocol_config_detected.mat"
    savemat(config, {"filelist": np.array(["a.png"], dtype=object), "labels": np.ones(1)})
    with pytest.raises(DatasetLayoutError, match="lacks the variable"):
        cuhk03(cuhk)
    write_config(cuhk / "cuhk03", "detected")
    variables = {k: v for k, v in loadmat(config).items() if not k.startswith("__")}
    savemat(config, {**variables, "train_idx": column([1, 11])})  # 11 is past the 10 files
    with pytest.raises(DatasetLayoutError, match="train_idx must be"):
        cuhk03(cuhk)
