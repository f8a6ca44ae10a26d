"""Checks every test applies to a picture it made: it opens, has its size, is not blank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def check_image(path: str | Path, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """Open ``path`` as an image, compare its ``(width, height)`` with ``size``; pixel std > 0."""
    with Image.open(path) as img:
        img.load()
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
        if size is not None:
            assert img.size == size, f"{path}: size {img.size}, expected {size}"
        assert pixels.std() > 0, f"{path} is blank"
        return img.size


def write_fake_images(
    folder: Path, names: list[str], height: int = 32, width: int = 16
) -> list[str]:
    """Distinct, non-uniform RGB images (each a seeded noise pattern) at ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        rng = np.random.default_rng(i)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
        paths.append(str(folder / name))
    return paths
