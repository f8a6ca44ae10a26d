"""Custom datasets: the PID-folder tree and the CSV file, and the checks for common mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from omnireid.data.datasets import DatasetLayoutError, load_dataset
from omnireid.data.datasets.custom import custom

TREE = {
    "train": ["0001/c1_a.jpg", "0001/c2_b.jpg", "0007/f12_c3.jpg"],
    "query": ["0002/c1_q.jpg", "0005/c3-q.jpg"],
    "gallery": ["0002/c2_g.jpg", "0002/c1_g.jpg", "0005/c1.g.jpg", "0099/c3_d.jpg"],
}


def write_tree(root: Path, tree: dict[str, list[str]]) -> None:
    for split, names in tree.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / split / name).parent.mkdir(exist_ok=True)
            Image.new("RGB", (4, 8)).save(root / split / name)


def test_folder_layout(tmp_path: Path) -> None:
    write_tree(tmp_path, TREE)
    ds = custom(tmp_path)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (3, 2, 4)
    assert sorted({s.pid for s in ds.train}) == [0, 1]  # 0001, 0007 relabelled
    assert [s.pid for s in ds.query] == [2, 5]
    assert {s.pid for s in ds.gallery} == {2, 5, 99}  # gallery-only id 99 allowed
    assert [s.camid for s in ds.train] == [0, 1, 2]  # cameras 1, 2, 3 -> 0, 1, 2
    assert ds.extra["cameras"] == [1, 2, 3]


def test_query_without_gallery_images(tmp_path: Path) -> None:
    write_tree(tmp_path, {**TREE, "query": [*TREE["query"], "0003/c1_x.jpg", "0004/c2_x.jpg"]})
    with pytest.raises(
        DatasetLayoutError, match=r"2 query id\(s\) have no gallery image: \[3, 4\]"
    ):
        custom(tmp_path)


def test_query_with_same_camera_matches_only(tmp_path: Path) -> None:
    gallery = ["0002/c1_g.jpg", "0005/c3_g.jpg", "0005/c3_h.jpg"]
    write_tree(tmp_path, {**TREE, "gallery": gallery})
    with pytest.raises(DatasetLayoutError, match=r"its own camera.*: \[2, 5\]"):
        custom(tmp_path)


def test_folder_layout_mistakes(tmp_path: Path) -> None:
    write_tree(tmp_path, {"train": ["0001/c1_a.jpg"], "query": ["0002/c1_q.jpg"]})
    with pytest.raises(DatasetLayoutError, match="gallery/ folder"):
        custom(tmp_path)
    write_tree(
        tmp_path,
        {"gallery": ["0002/c2_g.jpg", "bob/c1_x.jpg", "0002/nocam.jpg", "\u00b2/c1_y.jpg"]},
    )
    Image.new("RGB", (4, 8)).save(tmp_path / "gallery" / "loose_c1.jpg")
    with pytest.raises(DatasetLayoutError, match="4 unexpected entries") as err:
        custom(tmp_path)
    for problem in ("bob/ (PID folders", "nocam.jpg (no c<N>", "loose_c1.jpg (not in a PID"):
        assert problem in str(err.value)


def test_an_evaluation_set_needs_no_train_split(tmp_path: Path) -> None:
    """A site's own cameras to test on: query and gallery only."""
    write_tree(tmp_path, {"train": [], "query": ["0002/c1_q.jpg"], "gallery": ["0002/c2_g.jpg"]})
    ds = custom(tmp_path)
    assert (len(ds.train), len(ds.query), len(ds.gallery), ds.num_train_pids) == (0, 1, 1, 0)


def test_an_empty_query_or_gallery_split_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"train": ["0001/c1_a.jpg"], "query": [], "gallery": ["0002/c2_g.jpg"]})
    with pytest.raises(DatasetLayoutError, match="query split is empty"):
        custom(tmp_path)


def test_training_on_a_set_without_train_split_is_refused(tmp_path: Path) -> None:
    from omnireid.config import load_config
    from omnireid.errors import ConfigError
    from omnireid.tasks.reid import load_datasets

    write_tree(tmp_path, {"train": [], "query": ["0002/c1_q.jpg"], "gallery": ["0002/c2_g.jpg"]})
    config = load_config(None, ["data.dataset=custom", f"data.root={tmp_path}"])
    with pytest.raises(ConfigError, match="has no training images"):
        load_datasets(config)


def write_csv(tmp_path: Path, rows: list[str], header: str = "split,path,pid,camid") -> Path:
    write_tree(tmp_path / "images", {"all": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]})
    csv_path = tmp_path / "data.csv"
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    return csv_path


def test_csv_file(tmp_path: Path) -> None:
    rows = [
        "train,images/all/a.jpg,10,0",
        f"train,{tmp_path / 'images/all/b.jpg'},20,1",  # absolute paths work too
        "query,images/all/c.jpg,3,0",
        "gallery,images/all/d.jpg,3,1",
    ]
    ds = load_dataset("custom", write_csv(tmp_path, rows))
    assert [(s.pid, s.camid) for s in ds.train] == [(0, 0), (1, 1)]
    assert [(s.pid, s.camid) for s in ds.query + ds.gallery] == [(3, 0), (3, 1)]
    assert ds.query[0].path == str(tmp_path / "images/all/c.jpg")


def test_csv_mistakes(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="columns split,path,pid,camid"):
        custom(write_csv(tmp_path, ["train,images/all/a.jpg,1"], header="split,path,pid"))
    with pytest.raises(DatasetLayoutError, match=r"data\.csv:2: expected split in"):
        custom(write_csv(tmp_path, ["val,images/all/a.jpg,1,0"]))
    with pytest.raises(DatasetLayoutError, match=r"1 image\(s\) listed .* do not exist"):
        custom(write_csv(tmp_path, ["train,images/all/zz.jpg,1,0"]))
    with pytest.raises(DatasetLayoutError, match="CSV file"):
        custom(tmp_path / "missing.csv")
    # superscript two is a digit to str.isdigit but not to int(): refused, not a traceback
    with pytest.raises(DatasetLayoutError, match=r"data\.csv:2: expected split in"):
        custom(write_csv(tmp_path, ["train,images/all/a.jpg,\u00b2,0"]))


def test_an_image_listed_twice_is_refused_naming_its_lines(tmp_path: Path, capsys) -> None:
    from omnireid.cli import main

    base = ["train,images/all/a.jpg,10,0", "query,images/all/c.jpg,3,0"]
    cases = {  # the second listing of an image, and the lines the error names
        "the same row again": ("train,images/all/a.jpg,10,0", "a.jpg (lines 2, 5)"),
        "another label": ("train,images/all/a.jpg,11,1", "a.jpg (lines 2, 5)"),
        "query also in gallery": ("gallery,images/all/c.jpg,3,1", "c.jpg (lines 3, 5)"),
        "another spelling": (f"train,{tmp_path / 'images/./all/a.jpg'},10,0", "a.jpg (lines 2, 5)"),
    }
    for case, (again, named) in cases.items():
        path = write_csv(tmp_path, [*base, "gallery,images/all/d.jpg,3,1", again])
        with pytest.raises(DatasetLayoutError, match=r"lists 1 image\(s\) more than once") as e:
            custom(path)
        assert named in str(e.value), case
    assert main(["stats", "--dataset", "custom", "--root", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("omnireid stats: error:")
    assert "data.csv lists 1 image(s) more than once" in err[0]
    custom(write_csv(tmp_path, [*base, "gallery,images/all/d.jpg,3,1"]))  # each once: fine
