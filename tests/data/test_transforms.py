"""Training transforms on tiny hand-made images: geometry, provenance of pixels, statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from omnireid.data.transforms import (
    RandomEnlargeCrop,
    RandomPatch,
    ToNormalizedTensor,
    build_eval_transform,
    build_train_transform,
    compute_mean_std,
    reid_random_erasing,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def to_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


def is_filled_rectangle(mask: np.ndarray | torch.Tensor) -> bool:
    """``mask`` (H, W) is non-empty and equals its own bounding box."""
    mask = np.asarray(mask)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return False
    return bool(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all())


def test_train_transform_shape_dtype():
    transform = build_train_transform(
        32, 16, random_crop=True, random_patch=True, random_erasing=True, color_jitter=True
    )
    out = transform(noise_image(20, 50))
    assert out.shape == (3, 32, 16) and out.dtype == torch.float32


def test_train_transform_is_deterministic_under_a_seed():
    images = [noise_image(16, 32, seed) for seed in range(4)]

    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        transform = build_train_transform(
            32, 16, random_crop=True, random_patch=True, random_erasing=True, color_jitter=True
        )
        patch = next(t for t in transform.transforms if isinstance(t, RandomPatch))
        patch.min_pool_size = 1  # paste from the second image on
        return [transform(img) for img in images]

    assert all(torch.equal(a, b) for a, b in zip(run(), run(), strict=True))


def test_to_normalized_tensor_matches_the_v2_steps():
    img = noise_image(8, 16)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    ours = ToNormalizedTensor(mean, std)(img)
    v2_steps = build_eval_transform(16, 8, mean, std)(img)  # resize is a no-op at this size
    assert torch.equal(ours, v2_steps) and ours.is_contiguous()
    assert torch.equal(ToNormalizedTensor(mean, std)(F.pil_to_tensor(img)), ours)
    with pytest.raises(TypeError):
        ToNormalizedTensor(mean, std)(torch.zeros(3, 4, 4))


def test_flip_mirrors_the_image():
    img = noise_image(8, 16)  # already the target size: the resize leaves it unchanged
    plain = build_train_transform(16, 8, flip=False)(img)
    flip = build_train_transform(16, 8, flip=True)
    torch.manual_seed(0)
    outs = [flip(img) for _ in range(20)]
    mirrored = [torch.equal(o, plain.flip(-1)) for o in outs]
    assert all(m or torch.equal(o, plain) for m, o in zip(mirrored, outs, strict=True))
    assert 0 < sum(mirrored) < len(outs)
    assert not torch.equal(plain, plain.flip(-1))


def test_random_crop_is_a_window_of_the_enlarged_image():
    img = noise_image(20, 40)
    big = to_array(F.resize(img, [18, 9], interpolation=InterpolationMode.BILINEAR))  # 1.125x
    crop = RandomEnlargeCrop(16, 8, p=1.0)
    torch.manual_seed(0)
    offsets = set()
    for _ in range(30):
        out = to_array(crop(img))
        assert out.shape == (16, 8, 3)
        found = [
            (top, left)
            for top in range(3)
            for left in range(2)
            if np.array_equal(out, big[top : top + 16, left : left + 8])
        ]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 1
    plain = RandomEnlargeCrop(16, 8, p=0.0)(img)
    assert np.array_equal(to_array(plain), to_array(img.resize((8, 16), Image.BILINEAR)))


def test_random_patch_pastes_a_rectangle_of_an_earlier_image():
    red, blue = Image.new("RGB", (16, 32), RED), Image.new("RGB", (16, 32), BLUE)
    patch = RandomPatch(p=1.0, min_pool_size=1, p_rotate=0.0)
    torch.manual_seed(0)
    assert to_array(patch(red)).tolist() == to_array(red).tolist()  # empty pool: unchanged
    out = to_array(patch(blue))
    is_red, is_blue = (out == RED).all(-1), (out == BLUE).all(-1)
    assert (is_red | is_blue).all()
    assert is_filled_rectangle(is_red)
    assert (to_array(blue) == BLUE).all()  # the input is not modified


def test_random_patch_pastes_where_the_training_transform_puts_it():
    """In ``build_train_transform`` RandomPatch runs after the resize, so a patch of an earlier
    image of any size fits: a red 40x80 then a blue 20x10 crop give a red rectangle on blue."""
    transform = build_train_transform(32, 16, flip=False, random_patch=True)
    patch = next(t for t in transform.transforms if isinstance(t, RandomPatch))
    patch.p, patch.min_pool_size, patch.p_rotate = 1.0, 1, 0.0
    torch.manual_seed(0)
    transform(Image.new("RGB", (40, 80), RED))
    out = transform(Image.new("RGB", (20, 10), BLUE))
    # ImageNet normalisation of pure red and pure blue, channel by channel
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    red = ((torch.tensor(RED) / 255 - mean) / std).view(3, 1, 1)
    blue = ((torch.tensor(BLUE) / 255 - mean) / std).view(3, 1, 1)
    is_red = torch.isclose(out, red, atol=1e-5).all(0)
    is_blue = torch.isclose(out, blue, atol=1e-5).all(0)
    assert (is_red | is_blue).all() and is_filled_rectangle(is_red)
    assert 0.01 * 32 * 16 - 16 <= is_red.sum() <= 0.5 * 32 * 16 + 32  # + rounding of the sides


def test_random_patch_on_tensors_and_bounded_pool():
    patch = RandomPatch(p=1.0, pool_capacity=3, min_pool_size=1, p_rotate=0.0)
    torch.manual_seed(0)
    for value in range(1, 11):
        img = torch.full((3, 32, 16), value, dtype=torch.uint8)
        out = patch(img)
        if value > 1:
            pasted = out[0] != value
            assert is_filled_rectangle(pasted)
            recent = (out[0][pasted] >= max(value - 3, 1)) & (out[0][pasted] < value)
            assert recent.all()  # from one of the last three images: the pool holds three
    assert len(patch.pool) == 3


@pytest.mark.parametrize("value", ["mean", "random"])
def test_random_erasing_changes_one_rectangle(value):
    x = torch.ones(3, 64, 32)
    torch.manual_seed(0)
    out = reid_random_erasing(p=1.0, value=value)(x)
    changed = (out != x).any(0)
    assert is_filled_rectangle(changed)
    assert 0.02 * 64 * 32 <= changed.sum() <= 0.4 * 64 * 32 + 64  # + rounding of the sides
    if value == "mean":
        assert (out[:, changed] == 0).all()


def test_compute_mean_std_by_hand(tmp_path: Path):
    # Different sizes: after the resize to 8x4 each image counts equally.
    Image.new("RGB", (10, 20), (255, 51, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (40, 80), (0, 153, 0)).save(tmp_path / "b.png")
    mean, std = compute_mean_std([tmp_path / "a.png", str(tmp_path / "b.png")], 8, 4)
    # R: 1 and 0 -> 0.5 +- 0.5; G: 0.2 and 0.6 -> 0.4 +- 0.2; B: 0.
    assert mean == pytest.approx((0.5, 0.4, 0.0), abs=1e-12)
    assert std == pytest.approx((0.5, 0.2, 0.0), abs=1e-12)
    with pytest.raises(ValueError):
        compute_mean_std([], 8, 4)
