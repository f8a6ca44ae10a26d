"""Image files: reading one, finding many, and the Market-1501 file-name convention.

The one place that knows which suffixes are images (``IMAGE_EXTENSIONS``), how to list them
(``list_images``), how to read ``PPPP_cC...`` names (``parse_market_name``: camera ids
0-based, as everywhere in the package) and how any decoded image becomes 8-bit RGB
(``to_rgb``: PIL's own ``convert("RGB")`` clips 16-bit grey to white).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# PPPP_cC...: person id (-1 junk, 0 distractor in Market-1501), camera number (1-based)
MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")


# PIL's modes of 16-bit grey: a 16-bit grey PNG opens as "I;16" (as "I" in older Pillows)
GREY_16 = ("I;16", "I;16B", "I;16L", "I;16N")


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` (decoded by PIL) as 8-bit RGB: 16-bit grey scaled 0..65535 -> 0..255 by its
    high byte (``v >> 8``), as PIL reads 16-bit RGB PNGs, so one picture stored either way
    gives the same pixels; 8-bit modes, palettes and 16-bit RGB(A) as PIL converts them.
    PIL's own ``convert("RGB")`` would clip 16-bit grey to 255: a white image. Raises
    ``OSError`` for 32-bit integer or float pixels (no scale to read them by)."""
    mode = image.mode
    if mode in GREY_16 or (mode == "I" and image.format == "PNG"):  # PNG has no 32-bit grey
        high = (np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(high, "L").convert("RGB")
    if mode in ("I", "F"):
        kind = "float" if mode == "F" else "integer"
        raise OSError(f"a 32-bit {kind} image (PIL mode {mode}): only 8- and 16-bit are read")
    return image.convert("RGB")


def read_image(path: str | Path) -> Image.Image:
    """Open an image file as 8-bit RGB (``to_rgb``); a missing, unreadable or oversized file,
    or one of pixels ``to_rgb`` cannot map, raises ``OSError`` naming it (PIL's
    decompression-bomb limit included)."""
    try:
        with Image.open(path) as img:
            return to_rgb(img)
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise OSError(f"cannot read image {path}: {e}") from e
    except Image.DecompressionBombError as e:
        raise OSError(f"cannot read image {path}: {e}") from e


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(
    sources: str | Path | Sequence[str | Path],
    *,
    recursive: bool = True,
    limit: int | None = None,
    allow_empty: bool = False,
) -> list[Path]:
    """Image files named in ``sources``: files as given, folders searched (recursively unless
    ``recursive=False``), each folder's images sorted; at most ``limit``.

    A source that does not exist raises ``FileNotFoundError``; finding no image raises
    ``FileNotFoundError`` too unless ``allow_empty``.
    """
    if isinstance(sources, str | Path):
        sources = [sources]
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            pattern = path.rglob("*") if recursive else path.iterdir()
            found += sorted(p for p in pattern if is_image(p) and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no image file or folder at {path}")
    if not found and not allow_empty:
        names = ", ".join(str(s) for s in sources)
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {names}")
    return found[:limit] if limit else found


def parse_market_name(name: str | Path) -> tuple[int, int] | None:
    """``(pid, camid)`` of a Market-style file name, camid 0-based:
    ``0002_c1s1_000451_03.jpg`` -> ``(2, 0)``; ``None`` when the name does not follow it."""
    m = MARKET_NAME.match(Path(name).name)
    return (int(m.group(1)), int(m.group(2)) - 1) if m else None
