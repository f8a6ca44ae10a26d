"""Activation maps: the papers' definition on a known feature map, overlays, the command."""

import numpy as np
import pytest
import torch
from torch import nn

from omnireid.cli import main
from omnireid.models import build
from omnireid.visualize.actmap import activation_maps, compare_actmaps
from tests.visualize.images import check_image, write_fake_images


class FixedFeatures(nn.Module):
    """A stand-in model whose last conv features are a given (1, C, h, w) tensor."""

    def __init__(self, fmap: torch.Tensor) -> None:
        super().__init__()
        self.fmap = fmap

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fmap.expand(len(x), -1, -1, -1)


def test_sum_of_absolute_values_over_channels_normalised():
    # Channel sums of |f|: [[3, 1], [0, 2]] -> hottest top-left, zero bottom-left.
    fmap = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]], [[-2.0, 0.0], [0.0, 0.0]]]])
    am = activation_maps(FixedFeatures(fmap), torch.zeros(2, 3, 2, 2))
    assert am.shape == (2, 2, 2)
    np.testing.assert_allclose(am[0].numpy(), [[1.0, 1 / 3], [0.0, 2 / 3]], atol=1e-6)
    big = activation_maps(FixedFeatures(fmap), torch.zeros(1, 3, 8, 8))[0]
    assert big.shape == (8, 8) and big.argmax() == 0 and big.min() == 0 and big.max() == 1


def test_compare_two_models_side_by_side(tmp_path):
    paths = write_fake_images(tmp_path / "in", ["a.png", "b.jpg"], 70, 30)
    torch.manual_seed(0)
    models = [("T=4", build("osnet_x0_25")), ("T=1", build("osnet_x0_25", streams=1))]
    written = compare_actmaps(models, paths, tmp_path / "out", height=64, width=32)
    assert [p.name for p in written] == ["a.png", "b.png"]
    for p in written:  # image + 2 overlays of 32 px with 4 px gaps; one caption line
        check_image(p, (3 * 32 + 2 * 4, 64 + 14))


def test_compare_needs_a_model(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        compare_actmaps([], ["x.png"], tmp_path)


def test_actmap_command(tmp_path, tiny_world, toy_weights):
    out = tmp_path / "maps"
    argv = ["actmap", "--weights", str(toy_weights)]
    argv += ["--arch2", "osnet_x0_25", "--streams2", "1", "--fusion2", "none"]
    argv += ["--images", str(tiny_world / "query")]
    argv += ["--limit", "2", "--out", str(out), "--height", "128", "--width", "64"]
    assert main(argv) == 0
    for p in sorted(out.glob("0*.png")):
        check_image(p, (3 * 64 + 8, 128 + 14))
    assert len(list(out.glob("0*.png"))) == 2
    check_image(out / "all.png", (3 * 64 + 8, 2 * (128 + 14) + 6))
