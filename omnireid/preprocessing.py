"""What an image goes through before the network, and what follows it: stored with every
checkpoint and written into every exported model.

``Preprocessing`` is the contract between weights and the code that feeds them: input size,
channel order, value range, mean and std, resize filter and mode, and the normalisation of the
output features (the defaults are what the papers and the reference implementation use: RGB,
PIL bilinear resize of the whole crop to 256x128, pixels scaled to [0, 1], ImageNet statistics,
L2-normalised features). Training writes it into each checkpoint's ``meta.json``;
``models.loader.load_for_inference`` reads it back, so a model trained at 128x64 is evaluated,
indexed and exported at 128x64 without anyone typing the size again. Checkpoints written before
the contract had its last five fields store only size, mean and std; the rest take the defaults.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from omnireid.deprecation import warn_renamed
from omnireid.errors import CheckpointError


def _finite_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# The values this version implements for each descriptive field (a contract asking for another
# one is refused rather than silently fed the wrong way).
SUPPORTED: dict[str, tuple[str, ...]] = {
    "channel_order": ("RGB",),
    "interpolation": ("bilinear",),  # PIL's filter: antialiased when shrinking
    "resize": ("stretch",),  # the whole crop to height x width; the aspect ratio is not kept
    "output_norm": ("l2", "none"),
}


def l2_normalize(features: np.ndarray) -> np.ndarray:
    """``(N, D)`` rows scaled to unit length (``output_norm == "l2"``); an all-zero row stays
    zero."""
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def _triple(values: Sequence[float], name: str) -> tuple[float, float, float]:
    if len(values) != 3:
        raise CheckpointError(f"preprocessing {name} needs 3 values (RGB), got {list(values)}")
    a, b, c = (float(v) for v in values)
    return a, b, c


@dataclass(frozen=True)
class Preprocessing:
    """Image -> ``channel_order`` -> resize (``interpolation``, ``resize``) to ``height x
    width`` -> uint8 scaled linearly onto ``value_range`` -> ``(x - mean) / std`` -> network
    -> features, L2-normalised when ``output_norm == "l2"``."""

    height: int = 256
    width: int = 128
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)  # what uint8 0 and 255 become before mean/std
    interpolation: str = "bilinear"
    resize: str = "stretch"
    output_norm: str = "l2"

    def __post_init__(self) -> None:
        for name, allowed in SUPPORTED.items():
            if getattr(self, name) not in allowed:
                raise CheckpointError(
                    f"preprocessing {name}={getattr(self, name)!r}: this omnireid implements "
                    f"{', '.join(map(repr, allowed))}"
                )
        side = [v for v in (self.height, self.width) if isinstance(v, numbers.Integral)]
        bools = isinstance(self.height, bool) or isinstance(self.width, bool)
        if len(side) != 2 or bools or not all(1 <= v <= 4096 for v in side):
            raise CheckpointError(
                f"preprocessing height and width must be integers within [1, 4096], got "
                f"{self.height!r} x {self.width!r}"
            )
        for name in ("mean", "std", "value_range"):
            values = getattr(self, name)
            count = 2 if name == "value_range" else 3
            if len(values) != count or not all(_finite_number(v) for v in values):
                raise CheckpointError(
                    f"preprocessing {name} must be {count} finite numbers, got {list(values)}"
                )
        low, high = self.value_range
        if not (self.height > 0 and self.width > 0 and high > low):
            raise CheckpointError(
                f"preprocessing needs a positive size and value_range low < high, got "
                f"{self.height}x{self.width}, {list(self.value_range)}"
            )
        if min(self.std) <= 0:
            raise CheckpointError(f"preprocessing std must be positive, got {list(self.std)}")

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` of the network's input."""
        return self.height, self.width

    @property
    def size(self) -> tuple[int, int]:
        """Deprecated name of ``input_size``."""
        warn_renamed("Preprocessing.size", "Preprocessing.input_size")
        return self.input_size

    @property
    def unit_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Mean and std in units of ``uint8 / 255`` (equal to ``mean``/``std`` for [0, 1])."""
        low, high = self.value_range
        span = high - low
        return tuple((m - low) / span for m in self.mean), tuple(s / span for s in self.std)

    def to_meta(self) -> dict[str, Any]:
        """The ``preprocessing`` entry of a checkpoint's ``meta.json`` (JSON types only)."""
        return {
            "height": self.height,
            "width": self.width,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": self.channel_order,
            "value_range": list(self.value_range),
            "interpolation": self.interpolation,
            "resize": self.resize,
            "output_norm": self.output_norm,
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> Preprocessing:
        """Read ``to_meta``'s dict; missing keys take the defaults (256x128, ImageNet, ...)."""
        meta = meta or {}
        d = cls()
        try:
            low, high = (float(v) for v in meta.get("value_range", d.value_range))
            return cls(
                height=int(meta.get("height", d.height)),
                width=int(meta.get("width", d.width)),
                mean=_triple(meta.get("mean", d.mean), "mean"),
                std=_triple(meta.get("std", d.std), "std"),
                channel_order=str(meta.get("channel_order", d.channel_order)),
                value_range=(low, high),
                interpolation=str(meta.get("interpolation", d.interpolation)),
                resize=str(meta.get("resize", d.resize)),
                output_norm=str(meta.get("output_norm", d.output_norm)),
            )
        except (TypeError, ValueError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"unreadable preprocessing entry {dict(meta)}: {e}") from e
