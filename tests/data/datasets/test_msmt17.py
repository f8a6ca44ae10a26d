"""MSMT17 parser on fake v1 and v2 copies of the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from omnireid.data.datasets import DatasetLayoutError, load_dataset
from omnireid.data.datasets.msmt17 import msmt17

# (pid, camera 1..15) per list; image index = position in the list
LISTS = {
    "list_train.txt": [(0, 1), (0, 2), (1, 15), (2, 3)],
    "list_val.txt": [(1, 4), (3, 5)],
    "list_query.txt": [(0, 1), (1, 2)],
    "list_gallery.txt": [(0, 3), (1, 4), (2, 5)],
}


def write_msmt(root: Path, folder: str, train_dir: str, test_dir: str) -> Path:
    base = root / folder
    for list_name, entries in LISTS.items():
        image_dir = base / (
            train_dir if list_name in ("list_train.txt", "list_val.txt") else test_dir
        )
        lines = []
        for i, (pid, cam) in enumerate(entries):
            rel = f"{pid:04d}/{pid:04d}_{i:03d}_{cam:02d}_0303morning_{i:04d}_0.jpg"
            (image_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (4, 8)).save(image_dir / rel)
            lines.append(f"{rel} {pid}\n")
        (base / list_name).write_text("".join(lines))
    return base


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    write_msmt(tmp_path, "MSMT17_V1", "train", "test")
    return tmp_path


def test_train_is_list_train_only_by_default(v1: Path) -> None:
    ds = msmt17(v1)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (4, 2, 3)
    assert sorted({s.pid for s in ds.train}) == [0, 1, 2]
    assert {s.camid for s in ds.train} == {0, 1, 14, 2}  # cameras 1, 2, 15, 3
    assert [s.pid for s in ds.query] == [0, 1]  # test pid 0 is a person, kept
    assert ds.extra["version"] == "v1"


def test_combineall_trains_on_every_image(v1: Path) -> None:
    """The papers' protocol: train + val + query + gallery (126,441 images / 4,101 ids for the
    real MSMT17); the test ids, pid 0 included (a real person), come after the train ids."""
    ds = msmt17(v1, combineall=True)
    assert len(ds.train) == 4 + 2 + 2 + 3 and ds.extra["combineall"]
    # train pids 0..3 (train + val); test pids 0, 1, 2 -> 4, 5, 6
    assert sorted({s.pid for s in ds.train}) == list(range(7))
    added = [(s.pid, s.camid) for s in ds.train[6:]]
    assert added == [(4, 0), (5, 1), (4, 2), (5, 3), (6, 4)]  # query then gallery, by list order
    assert len(ds.query) == 2 and len(ds.gallery) == 3  # test splits unchanged
    assert [s.pid for s in ds.query] == [0, 1]


def test_combineall_from_a_config(v1: Path) -> None:
    from omnireid.config import load_config
    from omnireid.errors import ConfigError
    from omnireid.tasks.reid import load_datasets

    base = ["data.dataset=msmt17", f"data.root={v1}", "data.combineall=true"]
    train, _ = load_datasets(load_config(None, base))
    assert train.num_train_pids == 7
    with pytest.raises(ConfigError, match="combineall applies to"):
        load_datasets(load_config(None, [*base, "data.dataset=viper"]))


def test_v2_layout_and_registry(tmp_path: Path) -> None:
    base = write_msmt(tmp_path, "MSMT17_V2", "mask_train_v2", "mask_test_v2")
    ds = load_dataset("msmt17", tmp_path)
    assert ds.extra["version"] == "v2" and len(ds.train) == 4
    assert len(msmt17(base).gallery) == 3  # ROOT may be the MSMT17_V2 folder itself


def test_missing_dataset_and_list(tmp_path: Path, v1: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="MSMT17_V1/train"):
        msmt17(tmp_path / "nowhere")
    (v1 / "MSMT17_V1" / "list_query.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"list_query\.txt"):
        msmt17(v1)


def test_bad_lines_and_missing_images(v1: Path) -> None:
    gallery_list = v1 / "MSMT17_V1" / "list_gallery.txt"
    good = gallery_list.read_text()
    gallery_list.write_text(good + "0005/0005_000_01_x_0000_0.jpg\n")
    with pytest.raises(DatasetLayoutError, match=r"list_gallery.txt:4: expected"):
        msmt17(v1)
    gallery_list.write_text(good + "0005/0005_000_16_x_0000_0.jpg 5\n")
    with pytest.raises(DatasetLayoutError, match=r"camera in 1\.\.15"):
        msmt17(v1)
    gallery_list.write_text(good + "0005/0005_000_01_x_0000_0.jpg 5\n")
    with pytest.raises(DatasetLayoutError, match=r"1 image.*missing"):
        msmt17(v1)


def test_empty_list(v1: Path) -> None:
    (v1 / "MSMT17_V1" / "list_query.txt").write_text("\n")
    with pytest.raises(DatasetLayoutError, match=r"query list .* is empty"):
        msmt17(v1)
