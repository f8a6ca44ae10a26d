"""Training curves from a run's ``log.jsonl`` (one record per epoch, see ``engine/train.py``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omnireid.rundir import RunDir
from omnireid.visualize.canvas import pyplot

# Record fields that are not loss terms (every other numeric field of a record is one).
NOT_LOSSES = ("epoch", "lr", "images", "seconds", "acc")
METRIC_PREFIXES = ("rank", "mAP", "mINP", "model1_")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Records of ``path`` (a ``log.jsonl`` or the run folder holding one), in epoch order."""
    path = Path(path)
    if path.is_dir():
        path = RunDir(path).log
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path} (expected a run's log.jsonl)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records or any("epoch" not in r for r in records):
        raise ValueError(f"{path} holds no per-epoch records (each line needs an 'epoch')")
    return sorted(records, key=lambda r: r["epoch"])


def _is_loss(key: str, value: Any) -> bool:
    numeric = isinstance(value, int | float)
    return numeric and key not in NOT_LOSSES and not key.startswith(METRIC_PREFIXES)


def plot_training_curves(records: Sequence[dict[str, Any]], target: str | Path) -> Path:
    """Four panels over epochs: loss terms, training accuracy, learning rate, test R1/mAP."""
    if not records:
        raise ValueError("no records to plot")
    plt = pyplot()
    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.5))
    keys = [k for k in records[0] if _is_loss(k, records[0][k])]
    for key in keys:
        axes[0].plot(epochs, [r.get(key, float("nan")) for r in records], "o-", label=key)
    axes[0].set_title("training loss")
    if "acc" in records[0]:
        axes[1].plot(epochs, [100 * r["acc"] for r in records], "o-")
    axes[1].set_title("training accuracy (%)")
    if "lr" in records[0]:
        axes[2].plot(epochs, [r["lr"] for r in records], "o-")
    axes[2].set_title("learning rate")
    evaluated = [r for r in records if "rank1" in r]
    for key in ("rank1", "mAP"):
        axes[3].plot([r["epoch"] for r in evaluated], [r[key] for r in evaluated], "o-", label=key)
    axes[3].set_title("test R1 / mAP (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return Path(target)
