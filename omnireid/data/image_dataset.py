"""Torch Datasets over re-ID samples (and attribute samples), with an explicit policy for
unreadable images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from omnireid.data.datasets.attributes import AttributeSample, label_matrix
from omnireid.data.datasets.base import Sample
from omnireid.data.images import read_image
from omnireid.progress import progress

Item = tuple[torch.Tensor, int, int, int]  # image, pid, camid, index into the sample list


class ImageDataset(Dataset):
    """Items ``(image, pid, camid, index)``; ``image`` is ``transform(PIL RGB image)``.

    An unreadable image raises ``OSError`` naming the file. With ``skip_unreadable=True`` the
    item is ``None`` instead; ``collate_skipping`` drops it and the caller counts the gap.

    ``cache=True`` keeps every decoded image in memory (uint8 RGB, ``H * W * 3`` bytes each:
    ~320 MB for Market-1501's training set), so later epochs skip reading and decoding. Call
    :meth:`preload` before the ``DataLoader`` starts its workers: forked workers then share the
    one cache instead of each filling its own.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], torch.Tensor],
        skip_unreadable: bool = False,
        cache: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.skip_unreadable = skip_unreadable
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch``: empty per-epoch transform state (RandomPatch pools) in this process,
        as fresh loader workers start empty, so resumed runs match uninterrupted ones."""
        for step in getattr(self.transform, "transforms", [self.transform]):
            if callable(getattr(step, "reset", None)):
                step.reset()

    def with_transform(self, transform: Callable[[Image.Image], torch.Tensor]) -> ImageDataset:
        """A plain ``ImageDataset`` of the same samples with another transform, sharing this
        one's decoded-image cache (if any)."""
        other = ImageDataset(self.samples, transform, self.skip_unreadable)
        other._cache = self._cache
        return other

    def preload(self, show: bool = True) -> None:
        """Decode every image into the cache now (needs ``cache=True``)."""
        if self._cache is None:
            raise ValueError("preload needs an ImageDataset built with cache=True")
        for index in progress(range(len(self)), desc="decoding images", enabled=show):
            self._decoded(index)

    def _decoded(self, index: int) -> Image.Image:
        if self._cache is not None and index in self._cache:
            return Image.fromarray(self._cache[index])
        image = read_image(self.samples[index].path)
        if self._cache is not None:
            self._cache[index] = np.asarray(image)
        return image

    def __getitem__(self, index: int) -> Item | None:
        sample = self.samples[index]
        try:
            image = self._decoded(index)
        except OSError:
            if self.skip_unreadable:
                return None
            raise
        return self.transform(image), sample.pid, sample.camid, index


def collate_skipping(batch: list[Item | None]) -> tuple[torch.Tensor, ...] | None:
    """Default collation of the readable items; ``None`` when none of the batch was readable."""
    items = [item for item in batch if item is not None]
    if not items:
        return None
    images, pids, camids, indices = zip(*items, strict=True)
    return torch.stack(images), torch.tensor(pids), torch.tensor(camids), torch.tensor(indices)


class AttributeImageDataset(Dataset):
    """Items ``(image, (A,) float labels, index)``; reading as ``ImageDataset`` does."""

    def __init__(
        self, samples: Sequence[AttributeSample], transform: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.images = ImageDataset([Sample(s.path, i, 0) for i, s in enumerate(samples)], transform)
        self.labels = label_matrix(samples)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        item = self.images[index]
        assert item is not None  # its ImageDataset does not skip unreadable images
        image, _, _, _ = item
        return image, self.labels[index], index


class ArrayImageDataset(Dataset):
    """Items ``(image, label, index)`` from ``(N, H, W, 3)`` uint8 RGB arrays held in memory
    (CIFAR); ``image`` is ``transform(PIL image)``."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: Callable[[Image.Image], torch.Tensor],
    ) -> None:
        if images.ndim != 4 or images.shape[3] != 3 or len(images) != len(labels):
            raise ValueError(
                f"expected (N, H, W, 3) images and (N,) labels, got {images.shape} and "
                f"{labels.shape}"
            )
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image = Image.fromarray(self.images[index])
        return self.transform(image), int(self.labels[index]), index
