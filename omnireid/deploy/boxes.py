"""Detector boxes -> person crops of a video frame, for ``FeatureExtractor.extract_boxes``.

Boxes are ``(x1, y1, x2, y2)`` in pixels (a detector's xyxy output, floats allowed). Each is
clipped to the frame; its crop covers every pixel the box touches (``floor`` of the top-left,
``ceil`` of the bottom-right corner). A box that is empty after clipping (outside the frame,
zero or negative width or height) or has a non-finite coordinate is *degenerate*: it gets no
crop, and the caller gets a mask saying which boxes were used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from omnireid.errors import UsageError


def check_frame(frame: np.ndarray) -> np.ndarray:
    """``frame`` must be an ``(H, W, 3)`` uint8 array (an OpenCV or PIL-decoded frame)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise UsageError(
            f"frame: expected an (H, W, 3) uint8 array, got shape {frame.shape} {frame.dtype}"
        )
    return frame


def pixel_boxes(
    boxes: np.ndarray | Sequence[Sequence[float]], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 4)`` xyxy boxes -> ``(N, 4)`` int pixel bounds clipped to the frame, and the
    ``(N,)`` bool mask of the usable (non-degenerate) ones."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise UsageError(f"boxes: expected an (N, 4) xyxy array, got shape {boxes.shape}")
    bounds = np.zeros((len(boxes), 4), dtype=np.int64)
    valid = np.zeros(len(boxes), dtype=bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            continue
        left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
        right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
        if right > left and bottom > top:
            bounds[i] = left, top, right, bottom
            valid[i] = True
    return bounds, valid


def crop_boxes(
    frame: np.ndarray, boxes: np.ndarray | Sequence[Sequence[float]]
) -> tuple[list[np.ndarray], np.ndarray]:
    """The crops (views into ``frame``) of the usable boxes, in box order, and the mask."""
    frame = check_frame(frame)
    bounds, valid = pixel_boxes(boxes, frame.shape[0], frame.shape[1])
    crops = [frame[t:b, left:r] for (left, t, r, b), ok in zip(bounds, valid, strict=True) if ok]
    return crops, valid
