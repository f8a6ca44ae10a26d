"""What the visual commands read: a model with its weights, and a list of image files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omnireid.data.datasets.base import IMAGE_EXTENSIONS
from omnireid.deploy.extractor import load_model

__all__ = ["list_images", "load_model"]


def list_images(sources: Sequence[str | Path], limit: int | None = None) -> list[str]:
    """Image files named in ``sources`` (files, or folders searched recursively), sorted."""
    found: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"no image file or folder at {path}")
    if not found:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {list(sources)}")
    return found[:limit] if limit else found
