"""How close a lower-precision path's features are to fp32's: the check an int8 or bf16 export
must pass before it is written, and the one ``precision="auto"`` runs on its first batch.

Features are compared after L2 normalisation (what matching uses): the cosine of each image's
two features, and whether each image's nearest fp32 feature is its own ("twins").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnireid.errors import ExportError
from omnireid.preprocessing import l2_normalize

# The lowest per-image cosine to fp32 accepted, per precision. bf16: the x0.25 Market-1501
# checkpoint gave >= 0.9995 on the mini queries (torch autocast and OpenVINO). int8: it gave
# min 0.991 (ONNX Runtime QDQ) and 0.978 (NNCF for OpenVINO) on 32 mini queries, calibrated on
# the 88 mini train images; the 7-bit-weight graphs that cost 0.7 mAP on Market-1501 gave
# 0.96-0.995 (docs/deployment.md has the mAP cost of each path).
MIN_COSINE = {"fp32": 0.9999, "bf16": 0.999, "int8": 0.95}


class PrecisionCheckError(ExportError):
    """A lower-precision graph whose features are too far from fp32's."""


@dataclass(frozen=True)
class Agreement:
    """Mean and min cosine over ``images`` images, and whether all are nearest their twin."""

    mean_cosine: float
    min_cosine: float
    twins: bool
    images: int

    def __str__(self) -> str:
        twins = "each nearest its own fp32 twin" if self.twins else "some nearest another image"
        return (
            f"cosine to fp32 mean {self.mean_cosine:.4f}, min {self.min_cosine:.4f} on "
            f"{self.images} images ({twins})"
        )


def agreement(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """``Agreement`` of ``candidate`` ``(N, D)`` features with ``reference`` ``(N, D)``."""
    ref, got = l2_normalize(reference), l2_normalize(candidate)
    cosine = (ref * got).sum(1)
    twins = bool((np.argmax(got @ ref.T, axis=1) == np.arange(len(ref))).all())
    return Agreement(float(cosine.mean()), float(cosine.min()), twins, len(ref))


def check_against_fp32(
    fp32: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    precision: str,
    source: str | Path,
    batch_size: int = 1,
) -> Agreement:
    """Features of ``images`` ``(N, 3, H, W)`` through both runners, ``batch_size`` at a time
    (1: graphs exported with a fixed batch take that); raises ``PrecisionCheckError`` naming
    ``source`` when an image's cosine is below ``MIN_COSINE[precision]``."""
    chunks = [
        np.ascontiguousarray(images[i : i + batch_size], dtype=np.float32)
        for i in range(0, len(images), batch_size)
    ]
    found = agreement(
        np.concatenate([fp32(c) for c in chunks]), np.concatenate([candidate(c) for c in chunks])
    )
    bound = MIN_COSINE[precision]
    if not found.min_cosine >= bound:  # NaN fails too
        hint = ": calibrate on more, or more typical, images" if precision == "int8" else ""
        raise PrecisionCheckError(
            f"{source}: {precision} features are too far from fp32 ({found}; at least "
            f"{bound} expected){hint}"
        )
    return found
