"""What the visual commands read: a model with its weights, and a list of image files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omnireid.data.datasets.base import IMAGE_EXTENSIONS
from omnireid.engine.checkpoint import latest_checkpoint
from omnireid.models import OSNet, build
from omnireid.models.weights import CheckpointError, load_weights, read_state_dict


def resolve_weights(path: str | Path) -> Path:
    """A weights file, a checkpoint folder (``model.safetensors``) or a run folder (its latest)."""
    path = Path(path)
    if path.is_dir():
        run = latest_checkpoint(path)
        folder = run if run is not None else path
        if not (folder / "model.safetensors").is_file():
            raise CheckpointError(f"{path} holds no model.safetensors and no latest checkpoint")
        return folder / "model.safetensors"
    return path


def load_model(arch: str, weights: str | Path | None = None, **options) -> OSNet:
    """``build(arch, **options)`` in eval mode, with ``weights`` loaded when given (classifier
    sized from the checkpoint)."""
    if weights is None:
        return build(arch, **options).eval()
    state = read_state_dict(resolve_weights(weights))
    num_classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else 1000
    model = build(arch, num_classes=num_classes, **options)
    load_weights(model, state)
    return model.eval()


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
