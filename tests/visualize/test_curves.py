"""Training curves from a run's JSONL log."""

import json

import pytest

from omnireid.cli import main
from omnireid.visualize.curves import plot_training_curves, read_log
from tests.visualize.images import check_image

RECORDS = [
    {
        "epoch": 2,
        "lr": 0.001,
        "images": 32,
        "seconds": 1.0,
        "ce": 2.0,
        "triplet": 0.3,
        "loss": 2.3,
        "acc": 0.5,
        "rank1": 40.0,
        "mAP": 30.0,
    },
    {
        "epoch": 1,
        "lr": 0.003,
        "images": 32,
        "seconds": 1.0,
        "ce": 3.0,
        "triplet": 0.5,
        "loss": 3.5,
        "acc": 0.2,
    },
]


def _write_log(folder):
    folder.mkdir()
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS) + "\n")
    return folder


def test_read_log_sorts_epochs_and_accepts_the_run_folder(tmp_path):
    run = _write_log(tmp_path / "run")
    assert [r["epoch"] for r in read_log(run)] == [1, 2]
    assert read_log(run / "log.jsonl") == read_log(run)
    with pytest.raises(FileNotFoundError, match=r"log\.jsonl"):
        read_log(tmp_path)
    (tmp_path / "log.jsonl").write_text('{"loss": 1}\n')
    with pytest.raises(ValueError, match="epoch"):
        read_log(tmp_path)


def test_plot_and_command(tmp_path):
    path = plot_training_curves(sorted(RECORDS, key=lambda r: r["epoch"]), tmp_path / "c.png")
    check_image(path, (1500, 350))
    run = _write_log(tmp_path / "run")
    assert main(["curves", str(run), "--out", str(tmp_path / "cli.png")]) == 0
    check_image(tmp_path / "cli.png", (1500, 350))
