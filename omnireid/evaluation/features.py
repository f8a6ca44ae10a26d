"""Batched feature extraction with DataLoader workers and progress output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from omnireid.data.datasets.base import Sample
from omnireid.data.image_dataset import ImageDataset, collate_skipping
from omnireid.errors import non_finite_rows
from omnireid.progress import progress as show_progress


@dataclass
class Features:
    """``feats`` ``(N, D)`` float32 on the CPU, with the pids, camids and paths of its rows."""

    feats: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    paths: list[str]
    skipped: list[str]


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    samples: Sequence[Sample],
    transform: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    flip: bool = False,
    skip_unreadable: bool = False,
    desc: str = "features",
    progress: bool = True,
    dataset: ImageDataset | None = None,
) -> Features:
    """Run ``model`` (put in eval mode) over ``samples``.

    ``flip`` averages each image's feature with its horizontal mirror's (test-time flip).
    Unreadable images raise unless ``skip_unreadable``, in which case they are listed in
    ``Features.skipped`` and left out of the rows. Non-finite features raise
    ``NonFiniteFeaturesError`` naming how many images gave them. ``dataset``, when given,
    is read instead of a new ``ImageDataset(samples, transform)`` (e.g. one whose decoded
    images are cached in memory); its samples must be ``samples``.
    """
    model.eval()
    if dataset is None:
        dataset = ImageDataset(samples, transform, skip_unreadable)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=False,
    )
    feats, pids, camids, indices = [], [], [], []
    for batch in show_progress(loader, desc=desc, unit="batch", enabled=progress):
        if batch is None:
            continue
        images, pid, camid, index = batch
        images = images.to(device, non_blocking=True)
        f = model(images)
        if flip:
            f = (f + model(images.flip(3))) / 2
        feats.append(f.float().cpu())
        pids.append(pid)
        camids.append(camid)
        indices.append(index)
    if feats:
        bad = int((~torch.isfinite(torch.cat(feats))).any(1).sum())
        if bad:
            raise non_finite_rows(bad, sum(len(f) for f in feats), f"{desc} images")
    order = torch.cat(indices) if indices else torch.empty(0, dtype=torch.long)
    seen = set(order.tolist())
    return Features(
        feats=torch.cat(feats) if feats else torch.empty(0, 0),
        pids=torch.cat(pids) if pids else torch.empty(0, dtype=torch.long),
        camids=torch.cat(camids) if camids else torch.empty(0, dtype=torch.long),
        paths=[samples[i].path for i in order.tolist()],
        skipped=[s.path for i, s in enumerate(samples) if i not in seen],
    )
