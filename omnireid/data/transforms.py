"""Image transforms. Evaluation preprocessing: RGB, bilinear resize, ImageNet mean/std."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode, v2

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def read_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB; a missing or unreadable file raises ``OSError`` naming it."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise OSError(f"cannot read image {path}: {e}") from e


def build_eval_transform(
    height: int = 256,
    width: int = 128,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """PIL RGB image -> normalised ``(3, height, width)`` float tensor.

    The resize runs on the PIL image (PIL's bilinear filter), as the reference pipeline does,
    so features match checkpoints evaluated there.
    """
    return v2.Compose(
        [
            v2.Resize((height, width), interpolation=InterpolationMode.BILINEAR),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
