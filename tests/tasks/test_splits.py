"""The small-benchmark protocol: one model per split, tested on its own split, averaged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from omnireid.cli import main
from omnireid.models.spec import Split, load_spec


@pytest.fixture
def viper(tmp_path: Path) -> Path:
    """A fake VIPeR: 8 people, one image per camera (4 train and 4 test ids per split)."""
    for cam, shade in (("cam_a", 60), ("cam_b", 200)):
        folder = tmp_path / "VIPeR" / cam
        folder.mkdir(parents=True)
        for i in range(8):
            colour = (shade, 25 * i, 255 - 25 * i)
            Image.new("RGB", (16, 32), colour).save(folder / f"{i:03d}_x.bmp")
    return tmp_path


def _train(viper: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "data.dataset=viper",
        f"data.root={viper}",
        "data.height=64",
        "data.width=32",
        "data.batch_size=4",
        "data.workers=0",
        "optim.max_epoch=1",
        "optim.schedule=cosine",
        f"train.out_dir={out}",
        *extra,
    ]


@pytest.mark.slow
def test_all_splits_trains_one_model_per_split_and_averages(viper: Path, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main([*_train(viper, out), "--all-splits"]) == 0
    summary = json.loads((out / "splits.json").read_text())
    assert summary["dataset"] == "viper" and len(summary["splits"]) == 10
    for k in range(10):
        assert load_spec(out / f"split{k}" / "epoch-0001").provenance.split == Split("viper", k)
    ranks = [s["rank1"] for s in summary["splits"]]
    assert summary["mean"]["rank1"] == pytest.approx(sum(ranks) / 10)
    assert "viper, mean of 10 splits" in capsys.readouterr().out


def test_a_split_model_is_tested_on_its_own_split_only(viper: Path, tmp_path, capsys):
    run = tmp_path / "split3"
    assert main(_train(viper, run, "data.split_id=3")) == 0
    capsys.readouterr()
    base = ["evaluate", "--weights", str(run), "--dataset", "viper", "--root", str(viper)]
    assert main([*base, "--json", str(tmp_path / "own.json")]) == 0
    assert json.loads((tmp_path / "own.json").read_text())["num_splits"] == 1
    assert "testing split 3, the split the model was trained on" in capsys.readouterr().err
    assert main([*base, "--split-id", "4"]) == 2
    err = capsys.readouterr().err
    assert "fine-tuned on split 3" in err and "--any-split" in err
    assert main([*base, "--any-split", "--json", str(tmp_path / "all.json")]) == 0
    assert json.loads((tmp_path / "all.json").read_text())["num_splits"] == 10


def test_split_id_is_refused_for_datasets_without_splits(tiny_world: Path, tmp_path, capsys):
    args = ["train", f"data.root={tiny_world}", "data.split_id=2", f"train.out_dir={tmp_path}"]
    assert main(args) == 2
    assert "data.split_id applies to" in capsys.readouterr().err
