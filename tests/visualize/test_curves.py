"""Training curves from a run's JSONL log."""

import json

import pytest

from omnireid.cli import main
from omnireid.visualize.canvas import pyplot
from omnireid.visualize.curves import plot_training_curves, read_log, training_figure
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
    check_image(path, (1875, 350))
    run = _write_log(tmp_path / "run")
    assert main(["curves", str(run), "--out", str(tmp_path / "cli.png")]) == 0
    check_image(tmp_path / "cli.png", (1875, 350))


def test_feature_diagnostics_have_their_own_panel():
    """Feature norms (near 16-20) beside losses (1-4) would flatten the losses' curves."""
    stats = {"lr": 0.1, "acc": 0.5, "feat_dist": 9.0, "feat_spread": 0.5}
    records = [{"epoch": e, "ce": 3.0 - e, "loss": 3.0 - e, "feat_norm": 16.0 + e} for e in (1, 2)]
    fig = training_figure([{**r, **stats} for r in records])
    shown = [ax.get_legend_handles_labels()[1] for ax in fig.axes]
    assert shown[0] == ["ce", "loss"]
    assert shown[1] == ["feat_norm", "feat_dist", "feat_spread"]
    assert [ax.get_title() for ax in fig.axes][:2] == ["training loss", "feature diagnostics"]
    ce, norm = fig.axes[0].lines[0], fig.axes[1].lines[0]
    assert list(ce.get_ydata()) == [2.0, 1.0] and list(norm.get_ydata()) == [17.0, 18.0]
    pyplot().close(fig)
