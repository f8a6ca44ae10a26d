import shutil
from pathlib import Path

import pytest
import torch

from omnireid.data.datasets import load_dataset
from omnireid.data.image_dataset import ImageDataset
from omnireid.data.transforms import build_eval_transform


def _copy_of_world(world, tmp_path):
    root = tmp_path / "market"
    shutil.copytree(world, root)
    return load_dataset("market1501", root)


def test_cached_images_survive_the_files_and_equal_fresh_reads(tiny_world, tmp_path):
    dataset = _copy_of_world(tiny_world, tmp_path)
    samples = dataset.train[:8]
    transform = build_eval_transform(64, 32)
    fresh = [ImageDataset(samples, transform)[i][0] for i in range(8)]
    cached = ImageDataset(samples, transform, cache=True)
    cached.preload(show=False)
    for sample in samples:  # later epochs never touch the files again
        Path(sample.path).unlink()
    for i in range(8):
        assert torch.equal(cached[i][0], fresh[i])
    with pytest.raises(OSError, match="cannot read image"):
        ImageDataset(samples, transform)[0]


def test_preload_needs_the_cache(tiny_world):
    dataset = load_dataset("market1501", tiny_world)
    with pytest.raises(ValueError, match="cache=True"):
        ImageDataset(dataset.train[:2], build_eval_transform(64, 32)).preload()
