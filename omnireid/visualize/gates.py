"""Aggregation-gate analysis (ICCV Fig. 5, TPAMI Fig. 6): which scales each image uses.

Forward hooks on every block's ``AggregationGate`` record the gate vectors of the T streams.
The last block's vectors, concatenated, are clustered with seeded k-means and the images
closest to each centre shown as a grid; the mean gate per stream and stage shows which
receptive fields each stage leans on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from PIL import Image
from scipy.cluster.vq import kmeans2
from torch import nn
from torch.utils.data import DataLoader

from omnireid.data.datasets.base import Sample
from omnireid.data.image_dataset import ImageDataset
from omnireid.data.transforms import build_eval_transform
from omnireid.models import OSNet
from omnireid.models.layers import OSBlock
from omnireid.visualize.canvas import (
    GREY,
    WHITE,
    captioned,
    framed,
    hstack,
    load_cell,
    pyplot,
    vstack,
)

STAGES = ("conv2", "conv3", "conv4")


@dataclass
class GateRecord:
    """``gates[stage][block]`` is ``(N, T, C)``: the T stream gates of every image."""

    gates: dict[str, list[np.ndarray]]
    paths: list[str]

    def last_block(self) -> np.ndarray:
        """``(N, T * C)``: the last block's stream gates concatenated (the paper's vectors)."""
        g = self.gates[STAGES[-1]][-1]
        return g.reshape(len(g), -1)

    def stage_means(self) -> np.ndarray:
        """``(stages, T)``: mean gate value per stream, over images, channels and blocks."""
        return np.stack([np.mean([b.mean((0, 2)) for b in self.gates[s]], 0) for s in STAGES])


def _gate_modules(block: OSBlock) -> list[nn.Module]:
    if block.fusion in ("unified", "streamwise"):
        return [block.gate]
    if block.fusion == "separate":
        return list(block.gates)
    raise ValueError(f"fusion {block.fusion!r} has no input-dependent gates to analyse")


@torch.inference_mode()
def collect_gates(
    model: OSNet,
    paths: Sequence[str],
    height: int = 256,
    width: int = 128,
    batch_size: int = 32,
) -> GateRecord:
    """Run ``model`` over the images at ``paths`` and record every block's stream gates."""
    if not paths:
        raise ValueError("no images given")
    model.eval()
    calls: dict[tuple[str, int], list[torch.Tensor]] = {}
    handles = []
    for stage in STAGES:
        for b, block in enumerate(getattr(model, stage)):
            seen = calls.setdefault((stage, b), [])
            for gate in _gate_modules(block):
                # Each gate is called once per stream, in stream order (OSBlock.stream_gates).
                handles.append(gate.register_forward_hook(lambda m, i, o, s=seen: s.append(o)))
    streams = len(cast(OSBlock, model.conv2[0]).conv2)
    per_batch: dict[tuple[str, int], list[np.ndarray]] = {k: [] for k in calls}
    samples = [Sample(str(p), 0, 0) for p in paths]
    loader = DataLoader(ImageDataset(samples, build_eval_transform(height, width)), batch_size)
    try:
        for images, *_ in loader:
            model(images)
            for key, outs in calls.items():
                if len(outs) != streams:  # pragma: no cover - guards the hook ordering
                    raise RuntimeError(f"{key}: expected {streams} gate calls, got {len(outs)}")
                g = torch.stack([o.flatten(1).expand(len(images), -1) for o in outs], 1)
                per_batch[key].append(g.float().numpy())
                outs.clear()
    finally:
        for h in handles:
            h.remove()
    gates = {
        s: [np.concatenate(per_batch[(s, b)]) for b in range(len(getattr(model, s)))]
        for s in STAGES
    }
    return GateRecord(gates, [str(p) for p in paths])


def cluster_gates(
    vectors: np.ndarray, k: int, seed: int = 0, per_cluster: int = 8
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Seeded k-means (k-means++ start) on ``(N, D)`` vectors.

    Returns the ``(k, D)`` centres, ``(N,)`` labels and, per cluster, up to ``per_cluster``
    member indices nearest its centre (closest first). Empty clusters get an empty list.
    """
    if vectors.ndim != 2 or len(vectors) < k or k < 1:
        raise ValueError(f"need (N, D) vectors with N >= k >= 1, got {vectors.shape} and k={k}")
    data = vectors.astype(np.float64)
    centres, labels = kmeans2(data, k, minit="++", seed=np.random.default_rng(seed))
    nearest = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        dist = ((data[members] - centres[c]) ** 2).sum(1)
        nearest.append(members[np.argsort(dist, kind="stable")][:per_cluster])
    return centres, labels, nearest


def draw_clusters(
    paths: Sequence[str],
    nearest: Sequence[np.ndarray],
    labels: np.ndarray,
    target: str | Path,
    height: int = 128,
    width: int = 64,
) -> Path:
    """Fig. 5 style grid: one row per cluster, its members nearest the centre first."""
    rows = []
    for c, members in enumerate(nearest):
        size = int((labels == c).sum())
        cells = [
            captioned(framed(load_cell(paths[i], height, width), GREY, 1), [f"{n + 1}"])
            for n, i in enumerate(members)
        ]
        head = captioned(Image.new("RGB", (width, height), WHITE), [f"cluster {c}", f"n={size}"])
        rows.append(hstack([head, *cells], gap=3, first_gap=8))
    vstack(rows, gap=8).save(target)
    return Path(target)


def plot_stage_means(means: np.ndarray, target: str | Path) -> Path:
    """Bar chart of the ``(stages, T)`` mean gate per stream: which scales each stage uses."""
    plt = pyplot()
    stages, streams = means.shape
    fig, ax = plt.subplots(figsize=(6, 3.5))
    step = 0.8 / streams
    for t in range(streams):
        rf = 2 * (t + 1) + 1
        x = np.arange(stages) + (t - (streams - 1) / 2) * step
        ax.bar(x, means[:, t], step, label=f"stream {t + 1} ({rf}x{rf})")
    ax.set_xticks(np.arange(stages), STAGES[:stages])
    ax.set_ylabel("mean gate value")
    ax.set_title("aggregation gate per stream and stage")
    ax.set_ylim(0, float(means.max()) * 1.35)
    ax.legend(fontsize=8, ncol=min(streams, 4), loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return Path(target)
