"""The inputs a ``FeatureExtractor`` takes (image paths, PIL images, uint8 arrays, float
tensors) -> normalised ``(N, 3, H, W)`` float batches, each item checked and named by its
position when it is not one of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from omnireid.data.images import read_image, to_rgb
from omnireid.errors import UsageError

ImageInput = str | Path | Image.Image | np.ndarray | torch.Tensor


def is_single(inputs: Any) -> bool:
    """Whether ``inputs`` is one item (an image or a tensor) rather than a list of them."""
    return isinstance(inputs, str | Path | Image.Image | torch.Tensor) or (
        isinstance(inputs, np.ndarray) and inputs.ndim == 3
    )


def to_tensor(
    item: Any,
    bgr: bool,
    index: int,
    transform: Callable[[Image.Image], torch.Tensor],
    input_size: tuple[int, int],
) -> torch.Tensor:
    """One input item -> ``(k, 3, H, W)`` normalised float tensor: an image (path, PIL, ``(H, W,
    3)`` uint8 array, BGR when ``bgr``) through ``transform``, a float tensor of ``input_size``
    as it is; ``index`` names the item in errors."""
    if isinstance(item, str | Path):
        return transform(read_image(item))[None]
    if isinstance(item, Image.Image):
        return transform(to_rgb(item))[None]
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
            raise TypeError(
                f"input {index}: expected an (H, W, 3) uint8 array, got shape "
                f"{item.shape} dtype {item.dtype}"
            )
        rgb = np.ascontiguousarray(item[:, :, ::-1] if bgr else item)
        return transform(Image.fromarray(rgb))[None]
    if isinstance(item, torch.Tensor):
        x = item[None] if item.dim() == 3 else item
        expected = (3, *input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected or not x.is_floating_point():
            raise TypeError(
                f"input {index}: expected a normalised float tensor (3, H, W) or "
                f"(N, 3, H, W) with H, W = {input_size}, got {tuple(item.shape)} "
                f"{item.dtype}"
            )
        if not bool(torch.isfinite(x).all()):
            raise UsageError(f"input {index}: the tensor holds NaN or infinite values")
        return x.detach().float().cpu()
    raise TypeError(
        f"input {index}: expected an image path, PIL image, uint8 array or float tensor, "
        f"got {type(item).__name__}"
    )


def batches(
    items: Sequence[Any], batch_size: int, convert: Callable[[Any, int], torch.Tensor]
) -> Iterator[torch.Tensor]:
    """``(<= batch_size, 3, H, W)`` batches of ``convert(item, index)``, decoding images only as
    they are needed."""
    pending: list[torch.Tensor] = []
    count = 0
    for i, item in enumerate(items):
        x = convert(item, i)
        while len(x):
            take = x[: batch_size - count]
            pending.append(take)
            count += len(take)
            x = x[len(take) :]
            if count == batch_size:
                yield torch.cat(pending)
                pending, count = [], 0
    if pending:
        yield torch.cat(pending)
