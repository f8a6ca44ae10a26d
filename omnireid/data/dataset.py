"""A torch Dataset over re-ID samples, with an explicit policy for unreadable images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from omnireid.data.datasets.base import Sample
from omnireid.data.transforms import read_image

Item = tuple[torch.Tensor, int, int, int]  # image, pid, camid, index into the sample list


class ImageDataset(Dataset):
    """Items ``(image, pid, camid, index)``; ``image`` is ``transform(PIL RGB image)``.

    An unreadable image raises ``OSError`` naming the file. With ``skip_unreadable=True`` the
    item is ``None`` instead; ``collate_skipping`` drops it and the caller counts the gap.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], torch.Tensor],
        skip_unreadable: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item | None:
        sample = self.samples[index]
        try:
            image = read_image(sample.path)
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
