"""Image files: reading one, finding many, and the Market-1501 file-name convention.

The one place that knows which suffixes are images (``IMAGE_EXTENSIONS``), how to list them
(``list_images``) and how to read ``PPPP_cC...`` names (``parse_market_name``: camera ids
0-based, as everywhere in the package).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# PPPP_cC...: person id (-1 junk, 0 distractor in Market-1501), camera number (1-based)
MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")


def read_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB; a missing, unreadable or oversized file raises ``OSError``
    naming it (PIL's decompression-bomb limit included)."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
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
