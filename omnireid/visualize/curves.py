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
# Feature diagnostics (losses.embedding_statistics: norms near 16-20, far above the losses'
# 1-4): a panel of their own, so that neither flattens the other
DIAGNOSTIC_PREFIX = "feat_"


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
    return (
        numeric
        and key not in NOT_LOSSES
        and not key.startswith(METRIC_PREFIXES)
        and not key.startswith(DIAGNOSTIC_PREFIX)
    )


def training_figure(records: Sequence[dict[str, Any]]) -> Any:
    """A matplotlib figure of five panels over epochs: loss terms, feature diagnostics,
    training accuracy, learning rate, test R1/mAP."""
    if not records:
        raise ValueError("no records to plot")
    plt = pyplot()
    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 5, figsize=(18.75, 3.5))
    first = records[0]
    panels = (
        [k for k in first if _is_loss(k, first[k])],
        [k for k in first if k.startswith(DIAGNOSTIC_PREFIX) and isinstance(first[k], int | float)],
    )
    for ax, keys in zip(axes, panels, strict=False):
        for key in keys:
            ax.plot(epochs, [r.get(key, float("nan")) for r in records], "o-", label=key)
    axes[0].set_title("training loss")
    axes[1].set_title("feature diagnostics")
    if "acc" in first:
        axes[2].plot(epochs, [100 * r["acc"] for r in records], "o-")
    axes[2].set_title("training accuracy (%)")
    if "lr" in first:
        axes[3].plot(epochs, [r["lr"] for r in records], "o-")
    axes[3].set_title("learning rate")
    evaluated = [r for r in records if "rank1" in r]
    for key in ("rank1", "mAP"):
        axes[4].plot([r["epoch"] for r in evaluated], [r[key] for r in evaluated], "o-", label=key)
    axes[4].set_title("test R1 / mAP (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_training_curves(records: Sequence[dict[str, Any]], target: str | Path) -> Path:
    """``training_figure(records)`` written to ``target`` (PNG)."""
    fig = training_figure(records)
    fig.savefig(target, dpi=100)
    pyplot().close(fig)
    return Path(target)
