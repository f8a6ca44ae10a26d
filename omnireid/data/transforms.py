"""Image transforms.

Evaluation: RGB, PIL bilinear resize, ImageNet mean/std. Training: the re-ID augmentations
(flip, random crop, RandomPatch, colour jitter, random erasing) and dataset statistics.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from omnireid.data.images import read_image
from omnireid.errors import UsageError
from omnireid.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

log = logging.getLogger(__name__)


def build_eval_transform(
    height: int = 256,
    width: int = 128,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """PIL RGB image -> normalised ``(3, height, width)`` float tensor.

    The resize runs on the PIL image (PIL's bilinear filter), as the reference pipeline does,
    so features match checkpoints evaluated there. ``ToNormalizedTensor`` gives the values of
    ``ToImage -> ToDtype(scale=True) -> Normalize`` bit for bit, faster.
    """
    return v2.Compose(
        [
            WarnIfTiny(height, width),
            v2.Resize((height, width), interpolation=InterpolationMode.BILINEAR),
            ToNormalizedTensor(mean, std),
        ]
    )


class WarnIfTiny(torch.nn.Module):
    """Pass images through; log a warning (the first time only) for one smaller than
    ``1 / factor`` of the model's input in height or width: a 1x1 crop from a detector
    upscaled to 256x128 gives a feature, but not a person's."""

    def __init__(self, height: int, width: int, factor: int = 8) -> None:
        super().__init__()
        self.height, self.width, self.factor, self.warned = height, width, factor, False

    def forward(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        if not w or not h:  # resized, it would pass for a black image
            raise UsageError(
                f"an input image is {h}x{w} pixels: there is nothing to compute a feature from"
            )
        if not self.warned and (h * self.factor < self.height or w * self.factor < self.width):
            self.warned = True
            log.warning(
                "an input image is only %dx%d pixels for a %dx%d model: its features will say "
                "little (further ones are not reported)",
                h,
                w,
                self.height,
                self.width,
            )
        return img


def transform_for(preprocessing: Preprocessing) -> v2.Compose:
    """The evaluation transform a checkpoint's stored ``Preprocessing`` describes (RGB,
    PIL bilinear stretch: the only channel order and resize ``Preprocessing`` accepts)."""
    mean, std = preprocessing.unit_mean_std
    return build_eval_transform(preprocessing.height, preprocessing.width, mean, std)


# --- training ---------------------------------------------------------------------------------
# Every random draw below uses torch's generator, so ``torch.manual_seed`` (and the per-worker
# seeding of ``DataLoader``) makes a pipeline reproducible.

ImageOrTensor = Image.Image | torch.Tensor


def _uniform(low: float, high: float, n: int = 1) -> torch.Tensor:
    return torch.empty(n).uniform_(low, high)


def _randint(low: int, high: int) -> int:
    """Uniform integer in ``[low, high]`` (both inclusive)."""
    return int(torch.randint(low, high + 1, ()).item())


class RandomEnlargeCrop(torch.nn.Module):
    """The re-ID random crop (a small random translation).

    With probability ``p`` the image is resized to ``(round(scale * height), round(scale *
    width))`` and a random ``(height, width)`` region is cropped from it; otherwise it is just
    resized to ``(height, width)``. Bilinear resize; works on PIL images and ``(..., H, W)``
    tensors.
    """

    def __init__(self, height: int, width: int, p: float = 0.5, scale: float = 1.125) -> None:
        super().__init__()
        self.height, self.width, self.p, self.scale = height, width, p, scale

    def forward(self, img: ImageOrTensor) -> ImageOrTensor:
        size = [self.height, self.width]
        if torch.rand(()).item() >= self.p:
            return F.resize(img, size, interpolation=InterpolationMode.BILINEAR)
        big_h, big_w = round(self.scale * self.height), round(self.scale * self.width)
        img = F.resize(img, [big_h, big_w], interpolation=InterpolationMode.BILINEAR)
        top, left = _randint(0, big_h - self.height), _randint(0, big_w - self.width)
        return F.crop(img, top, left, self.height, self.width)


class RandomPatch(torch.nn.Module):
    """RandomPatch (OSNet, ICCV 2019, footnote 5): paste a patch of an earlier image.

    Each call first, with probability ``p`` and once the pool holds ``min_pool_size`` patches,
    pastes a random pool patch at a random position of a copy of the image, flipped left-right
    with probability ``p_flip`` and rotated by a uniform angle in ``[-max_angle, max_angle]``
    degrees with probability ``p_rotate`` (the corners the rotation uncovers are black). It then
    crops a new patch from the *input* image and adds it to the pool, so pasted pixels always
    come from earlier images. A patch covers a uniform fraction in ``[min_area, max_area]`` of
    the image, with height/width ratio uniform in ``[min_ratio, 1 / min_ratio]`` (the reference
    implementation's draws; tall patches dominate); draws that do not fit are retried.

    The pool keeps the latest ``pool_capacity`` patches (about 20 KB each at 256x128, so the
    default bounds it near 200 MB). It lives in the process that runs the transform: each
    ``DataLoader`` worker keeps its own, and it is emptied every epoch (fresh workers start
    with an empty copy; without workers :meth:`reset` is called through
    ``ImageDataset.set_epoch``), so a resumed run sees the same pools as an uninterrupted one.
    The reference keeps 50,000 but, being emptied every epoch, holds at most one worker's share
    of an epoch, which 10,000 covers for the usual benchmarks. Works on PIL images (apply it
    before ``ToImage``, as the reference does) and ``(C, H, W)`` tensors; feed one kind.
    """

    def __init__(
        self,
        p: float = 0.5,
        pool_capacity: int = 10_000,
        min_pool_size: int = 100,
        min_area: float = 0.01,
        max_area: float = 0.5,
        min_ratio: float = 0.1,
        p_flip: float = 0.5,
        p_rotate: float = 0.5,
        max_angle: float = 10.0,
        max_tries: int = 100,
    ) -> None:
        super().__init__()
        if not 0 < min_area <= max_area <= 1 or not 0 < min_ratio <= 1:
            raise ValueError("need 0 < min_area <= max_area <= 1 and 0 < min_ratio <= 1")
        if pool_capacity < max(min_pool_size, 1):
            raise ValueError(f"pool_capacity {pool_capacity} < min_pool_size {min_pool_size}")
        self.p, self.min_pool_size = p, min_pool_size
        self.area, self.ratio = (min_area, max_area), (min_ratio, 1 / min_ratio)
        self.p_flip, self.p_rotate, self.max_angle = p_flip, p_rotate, max_angle
        self.max_tries = max_tries
        self.pool_capacity = pool_capacity
        self.pool: list[ImageOrTensor] = []
        self._next = 0  # ring-buffer slot the next patch overwrites once the pool is full

    def reset(self) -> None:
        """Empty the pool (at the start of every epoch)."""
        self.pool, self._next = [], 0

    def forward(self, img: ImageOrTensor) -> ImageOrTensor:
        out = img
        if len(self.pool) >= self.min_pool_size and torch.rand(()).item() < self.p:
            out = self._paste(img, self.pool[_randint(0, len(self.pool) - 1)])
        self._collect(img)
        return out

    def _paste(self, img: ImageOrTensor, patch: ImageOrTensor) -> ImageOrTensor:
        height, width = F.get_size(img)
        if torch.rand(()).item() < self.p_flip:
            patch = F.horizontal_flip(patch)
        if torch.rand(()).item() < self.p_rotate:
            patch = F.rotate(patch, _uniform(-self.max_angle, self.max_angle).item())
        ph, pw = F.get_size(patch)
        if ph > height or pw > width:  # from a larger image: only when placed before the resize
            return img
        top, left = _randint(0, height - ph), _randint(0, width - pw)
        if isinstance(img, Image.Image):
            pasted = img.copy()
            pasted.paste(cast(Image.Image, patch), (left, top))
            return pasted
        out = img.clone()
        out[..., top : top + ph, left : left + pw] = cast(torch.Tensor, patch)
        return out

    def _collect(self, img: ImageOrTensor) -> None:
        height, width = F.get_size(img)
        area = _uniform(*self.area, n=self.max_tries) * height * width
        ratio = _uniform(*self.ratio, n=self.max_tries)
        ph, pw = (area * ratio).sqrt().round().int(), (area / ratio).sqrt().round().int()
        fits = ((ph >= 1) & (ph <= height) & (pw >= 1) & (pw <= width)).nonzero()
        if len(fits) == 0:
            return
        ph, pw = int(ph[fits[0, 0]]), int(pw[fits[0, 0]])
        patch = F.crop(img, _randint(0, height - ph), _randint(0, width - pw), ph, pw)
        if isinstance(patch, torch.Tensor):
            patch = patch.clone()  # a view would keep the whole image alive in the pool
        if len(self.pool) < self.pool_capacity:
            self.pool.append(patch)
        else:
            self.pool[self._next] = patch
            self._next = (self._next + 1) % self.pool_capacity


class ToNormalizedTensor(torch.nn.Module):
    """PIL RGB image or ``(3, H, W)`` uint8 tensor -> contiguous normalised float ``(3, H, W)``.

    The same values, bit for bit, as ``v2.ToImage``, ``v2.ToDtype(float32, scale=True)`` and
    ``v2.Normalize(mean, std)``, about 3x faster on one CPU thread: those keep PIL's
    channels-last memory layout, on which the per-channel arithmetic is slow, and pay tensor-
    subclass dispatch on every operation (see ``benchmarks/decode.py``).
    """

    mean: torch.Tensor  # (3, 1, 1) buffers
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, img: ImageOrTensor) -> torch.Tensor:
        if isinstance(img, Image.Image):
            img = torch.from_numpy(np.array(img)).permute(2, 0, 1)  # np.array: writable
        elif img.dtype != torch.uint8:
            raise TypeError(f"ToNormalizedTensor takes uint8 tensors, got {img.dtype}")
        x = img.to(torch.float32, memory_format=torch.contiguous_format)
        return x.mul_(1 / 255).sub_(self.mean).div_(self.std)


def reid_random_erasing(p: float = 0.5, value: Literal["mean", "random"] = "mean") -> v2.Transform:
    """Random erasing (Zhong et al.) for the *normalised* ``(3, H, W)`` tensor.

    Erases a rectangle of 2-40% of the image with height/width ratio in ``[0.3, 1/0.3]``
    (log-uniform, as torchvision draws it). ``value="mean"`` fills with 0, the normalisation
    mean pixel (the ImageNet mean for the default statistics: the paper's RE-M); ``"random"``
    fills with per-pixel standard-normal noise, random pixels in normalised units (its RE-R).
    The reference implementation fills the normalised tensor with 0.4914/0.4822/0.4465 (the
    CIFAR-10 mean in ``[0, 1]`` units, so about half a std above the mean: a light grey).
    """
    return v2.RandomErasing(
        p=p, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=_erasing_fill(value)
    )


def _erasing_fill(value: Literal["mean", "random"]) -> float | str:
    if value not in ("mean", "random"):
        raise ValueError(f"erasing value must be 'mean' or 'random', got {value!r}")
    return 0.0 if value == "mean" else "random"


def build_train_transform(
    height: int = 256,
    width: int = 128,
    *,
    flip: bool = True,
    random_crop: bool = False,
    random_patch: bool = False,
    random_erasing: bool = False,
    color_jitter: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """PIL RGB image -> augmented, normalised ``(3, height, width)`` float tensor.

    Order (the reference's): resize or :class:`RandomEnlargeCrop` (p=0.5, x1.125), horizontal
    flip (p=0.5), :class:`RandomPatch` (defaults), colour jitter (brightness 0.2, contrast 0.15,
    the reference's values), :class:`ToNormalizedTensor` with ``mean``/``std`` (ImageNet, or a
    dataset's from :func:`compute_mean_std`), :func:`reid_random_erasing` (mean fill). For other
    parameters compose these pieces directly.
    """
    size = (height, width)
    steps: list[Callable[[ImageOrTensor], ImageOrTensor]] = [
        RandomEnlargeCrop(height, width)
        if random_crop
        else v2.Resize(size, interpolation=InterpolationMode.BILINEAR)
    ]
    if flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if random_patch:
        steps.append(RandomPatch())
    if color_jitter:
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.15))
    steps.append(ToNormalizedTensor(mean, std))
    if random_erasing:
        steps.append(reid_random_erasing())
    return v2.Compose(steps)


def compute_mean_std(
    paths: Sequence[str | Path], height: int = 256, width: int = 128
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel RGB mean and std in ``[0, 1]`` units over every pixel of every image.

    Each image is read as :func:`build_eval_transform` reads it (RGB, PIL bilinear resize to
    ``(height, width)``, 8-bit values), so each counts equally. One pass, one image in memory at
    a time; the sums are exact integers, so the result does not depend on the images' order.
    The std is the population one (divides by the pixel count).
    """
    if not paths:
        raise ValueError("compute_mean_std needs at least one image")
    total = np.zeros(3, dtype=np.int64)
    total_sq = np.zeros(3, dtype=np.int64)
    for path in paths:
        img = F.resize(read_image(path), [height, width], interpolation=InterpolationMode.BILINEAR)
        pixels = np.asarray(img, dtype=np.int64).reshape(-1, 3)
        total += pixels.sum(axis=0)
        total_sq += (pixels * pixels).sum(axis=0)
    n = len(paths) * height * width
    # Exact integers up to the last division: var * (n * 255)^2 = n * sum(x^2) - sum(x)^2.
    sums, sums_sq = [int(v) for v in total], [int(v) for v in total_sq]
    mean = [s / (n * 255) for s in sums]
    std = [math.sqrt(n * q - s * s) / (n * 255) for s, q in zip(sums, sums_sq, strict=True)]
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])
