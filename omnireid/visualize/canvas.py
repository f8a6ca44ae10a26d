"""Shared drawing helpers: headless matplotlib, image cells with borders and captions, grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from omnireid.data.images import read_image

Color = tuple[int, int, int]
GREEN: Color = (0, 170, 0)
RED: Color = (215, 0, 0)
GREY: Color = (128, 128, 128)
BLUE: Color = (30, 90, 200)
WHITE: Color = (255, 255, 255)
CAPTION_HEIGHT = 14


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load_cell(path: str | Path, height: int, width: int) -> Image.Image:
    """Read an image as RGB and resize it (bilinear) to ``height x width``."""
    return read_image(path).resize((width, height), Image.Resampling.BILINEAR)


def framed(image: Image.Image, color: Color, border: int = 4) -> Image.Image:
    """``image`` with a solid ``border``-pixel frame of ``color`` drawn over its edge."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    for i in range(border):
        draw.rectangle((i, i, w - 1 - i, h - 1 - i), outline=color)
    return out


def captioned(image: Image.Image, lines: Sequence[str]) -> Image.Image:
    """``image`` with one caption line per entry of ``lines`` below it, on white."""
    w, h = image.size
    out = Image.new("RGB", (w, h + CAPTION_HEIGHT * len(lines)), WHITE)
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for i, line in enumerate(lines):
        draw.text((2, h + 1 + CAPTION_HEIGHT * i), line, fill=(0, 0, 0), font=font)
    return out


def hstack(
    images: Sequence[Image.Image], gap: int = 4, first_gap: int | None = None
) -> Image.Image:
    """Images side by side, top-aligned, on white; ``first_gap`` separates the first one."""
    if not images:
        raise ValueError("hstack needs at least one image")
    gaps = [0] + [gap] * (len(images) - 1)
    if first_gap is not None and len(images) > 1:
        gaps[1] = first_gap
    width = sum(im.width for im in images) + sum(gaps)
    out = Image.new("RGB", (width, max(im.height for im in images)), WHITE)
    x = 0
    for im, g in zip(images, gaps, strict=True):
        x += g
        out.paste(im, (x, 0))
        x += im.width
    return out


def vstack(images: Sequence[Image.Image], gap: int = 4) -> Image.Image:
    """Images one below another, left-aligned, on white."""
    if not images:
        raise ValueError("vstack needs at least one image")
    height = sum(im.height for im in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (max(im.width for im in images), height), WHITE)
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height + gap
    return out


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a ``(H, W)`` map in [0, 1] (jet colours) over an ``(H, W, 3)`` uint8 image."""
    if image.shape[:2] != heat.shape:
        raise ValueError(f"heat map {heat.shape} does not match image {image.shape[:2]}")
    from matplotlib import colormaps

    colours = colormaps["jet"](np.clip(heat, 0.0, 1.0))[..., :3] * 255.0
    return ((1 - alpha) * image.astype(np.float64) + alpha * colours).round().astype(np.uint8)
