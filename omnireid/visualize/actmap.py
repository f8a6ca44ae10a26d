"""Activation maps (ICCV Fig. 6, TPAMI Fig. 7): where the last conv feature maps fire.

Following the papers, a map is the sum over channels of the absolute values of the last conv
feature maps (``forward_features``), L2-normalised over space, then upsampled to the image and
drawn as a heat map over it. Two models side by side compare, e.g., OSNet with the single-scale
T=1 ablation (Table 5, model 9).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from omnireid.data.images import read_image
from omnireid.data.transforms import build_eval_transform
from omnireid.models import OSNet
from omnireid.visualize.canvas import captioned, heat_overlay, hstack, vstack


@torch.inference_mode()
def activation_maps(model: OSNet, images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` normalised images -> ``(N, H, W)`` maps, each scaled to [0, 1].

    ``sum_c |f_c|`` of the ``(N, C, h, w)`` features, divided by its spatial L2 norm, bilinearly
    upsampled to ``H x W`` and min-max scaled per image for display.
    """
    model.eval()
    fmap = model.forward_features(images)
    am = fmap.abs().sum(1)  # (N, h, w)
    am = F.normalize(am.flatten(1), p=2, dim=1).view_as(am)
    am = F.interpolate(am[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)
    am = am[:, 0]
    low = am.flatten(1).min(1).values[:, None, None]
    high = am.flatten(1).max(1).values[:, None, None]
    return (am - low) / (high - low).clamp_min(1e-12)


def compare_actmaps(
    models: Sequence[tuple[str, OSNet]],
    paths: Sequence[str | Path],
    out_dir: str | Path,
    height: int = 256,
    width: int = 128,
    alpha: float = 0.5,
) -> list[Path]:
    """For each image write ``out_dir/<stem>.png``: the image, then one overlay per model.

    Each panel is ``height x width`` plus a caption row naming the model. Returns the paths.
    """
    if not models:
        raise ValueError("compare_actmaps needs at least one (name, model) pair")
    if not paths:
        raise ValueError("no images given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    transform = build_eval_transform(height, width)
    written = []
    for path in paths:
        image = read_image(path)
        batch = transform(image)[None]
        pixels = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
        panels = [captioned(Image.fromarray(pixels), [Path(path).name[: width // 6]])]
        for name, model in models:
            heat = activation_maps(model, batch)[0].numpy()
            overlay = Image.fromarray(heat_overlay(pixels, heat, alpha))
            panels.append(captioned(overlay, [name[: width // 6]]))
        target = out_dir / f"{Path(path).stem}.png"
        hstack(panels, gap=4).save(target)
        written.append(target)
    return written


def contact_sheet(paths: Sequence[Path], target: str | Path) -> Path:
    """Stack the per-image comparisons into one tall PNG (the figure to look at first)."""
    images = [Image.open(p).convert("RGB") for p in paths]
    vstack(images, gap=6).save(target)
    return Path(target)
