"""check-pipeline's bar chart: feature drift and, with labels, the rank-1/mAP change."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from omnireid.deploy.pipeline import VariantResult
from omnireid.visualize.canvas import pyplot


def plot_pipeline_check(results: Sequence[VariantResult], target: str | Path, title: str) -> Path:
    """Left: ``1 - cosine`` to the reference features (mean and worst image, log axis); right,
    when the rows carry metrics: rank-1 and mAP change against the first row, in points."""
    plt = pyplot()
    labelled = bool(results[0].metrics)
    rows = list(results[1:])  # the reference itself has no drift
    names = [r.name for r in rows]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2 if labelled else 1, figsize=(12 if labelled else 7, 4.5))
    left = axes[0] if labelled else axes
    floor = 1e-8  # 1 - cosine of 0 (exact) cannot be drawn on a log axis
    mean = np.maximum([1 - r.cos_mean for r in rows], floor)
    worst = np.maximum([1 - r.cos_min for r in rows], floor)
    left.barh(y - 0.2, mean, 0.4, color="tab:blue", label="mean over images")
    left.barh(y + 0.2, worst, 0.4, color="tab:red", label="worst image")
    left.set_xscale("log")
    left.set_xlabel("1 - cosine to the reference features")
    left.legend(fontsize=8)
    if labelled:
        right = axes[1]
        base = results[0].metrics
        d_r1 = [r.metrics["rank1"] - base["rank1"] for r in rows]
        d_map = [r.metrics["mAP"] - base["mAP"] for r in rows]
        right.barh(y - 0.2, d_r1, 0.4, color="tab:orange", label="rank-1")
        right.barh(y + 0.2, d_map, 0.4, color="tab:green", label="mAP")
        right.axvline(0, color="k", lw=0.8)
        right.set_xlabel("change against the reference (points)")
        right.legend(fontsize=8)
    for ax in axes if labelled else [axes]:
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return Path(target)
