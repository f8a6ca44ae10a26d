"""Verification plots: genuine/impostor cosine-score histograms and the ROC (log FPR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnireid.evaluation.verification import roc_curve
from omnireid.visualize.canvas import pyplot


def plot_verification(
    genuine: np.ndarray, impostor: np.ndarray, threshold: float, target: str | Path
) -> Path:
    """Left: score distributions with the suggested ``threshold``; right: ROC, FPR on a log axis."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(min(genuine.min(), impostor.min()), max(genuine.max(), impostor.max()), 60)
    left.hist(impostor, bins, density=True, alpha=0.6, color="tab:red", label="different person")
    left.hist(genuine, bins, density=True, alpha=0.6, color="tab:green", label="same person")
    left.axvline(threshold, color="k", ls="--", label=f"threshold {threshold:.3f}")
    left.set_xlabel("cosine similarity")
    left.set_ylabel("density")
    left.legend(fontsize=8)
    fpr, tpr, _ = roc_curve(genuine, impostor)
    floor = 0.5 / len(impostor)  # FPR 0 cannot be drawn on a log axis
    right.plot(np.maximum(fpr, floor), tpr, color="tab:blue")
    right.axvline(max(float((impostor >= threshold).mean()), floor), color="k", ls="--")
    right.set_xscale("log")
    right.set_xlim(floor, 1)
    right.set_ylim(0, 1.01)
    right.set_xlabel("false accept rate (FPR)")
    right.set_ylabel("true accept rate (TPR)")
    right.set_title(f"ROC: {len(genuine)} genuine, {len(impostor)} impostor pairs")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return Path(target)
