"""What an image goes through before the network, stored with every checkpoint.

``Preprocessing`` is the contract between weights and the code that feeds them: input size,
mean and std (and the defaults the papers and the reference implementation use: 256x128,
ImageNet statistics, RGB, PIL bilinear resize). Training writes it into each checkpoint's
``meta.json``; ``models.loader.load_for_inference`` reads it back, so a model trained at
128x64 is evaluated, indexed and exported at 128x64 without anyone typing the size again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omnireid.errors import CheckpointError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _triple(values: Sequence[float], name: str) -> tuple[float, float, float]:
    if len(values) != 3:
        raise CheckpointError(f"preprocessing {name} needs 3 values (RGB), got {list(values)}")
    a, b, c = (float(v) for v in values)
    return a, b, c


@dataclass(frozen=True)
class Preprocessing:
    """RGB image -> PIL bilinear resize to ``height x width`` -> ``(x / 255 - mean) / std``."""

    height: int = 256
    width: int = 128
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def to_meta(self) -> dict[str, Any]:
        """The ``preprocessing`` entry of a checkpoint's ``meta.json``."""
        return {
            "height": self.height,
            "width": self.width,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> Preprocessing:
        """Read ``to_meta``'s dict; missing keys take the defaults (256x128, ImageNet)."""
        meta = meta or {}
        default = cls()
        try:
            return cls(
                height=int(meta.get("height", default.height)),
                width=int(meta.get("width", default.width)),
                mean=_triple(meta.get("mean", default.mean), "mean"),
                std=_triple(meta.get("std", default.std), "std"),
            )
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"unreadable preprocessing entry {dict(meta)}: {e}") from e
