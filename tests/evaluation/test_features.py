import shutil

import pytest
import torch

from omnireid.data.datasets import load_dataset
from omnireid.data.images import read_image
from omnireid.data.transforms import build_eval_transform
from omnireid.evaluation.features import extract_features
from omnireid.models import build


@pytest.fixture
def world_copy(tiny_world, tmp_path):
    """A writable copy of the tiny world with one query image corrupted."""
    root = tmp_path / "Market-1501-v15.09.15"
    shutil.copytree(tiny_world, root)
    victim = sorted((root / "query").glob("*.jpg"))[3]
    victim.write_bytes(b"not a jpeg")
    return root, victim


def _tiny_model():
    torch.manual_seed(0)
    return build("osnet_x0_25", num_classes=12).eval()


def test_features_have_one_row_per_image_in_order(tiny_world):
    dataset = load_dataset("market1501", tiny_world)
    feats = extract_features(
        _tiny_model(), dataset.query, build_eval_transform(64, 32), batch_size=5, progress=False
    )
    assert feats.feats.shape == (32, 512)
    assert feats.paths == [s.path for s in dataset.query]
    assert feats.pids.tolist() == [s.pid for s in dataset.query]
    assert not feats.skipped


def test_flip_averages_with_the_mirror_image(tiny_world):
    dataset = load_dataset("market1501", tiny_world)
    model, tf = _tiny_model(), build_eval_transform(64, 32)
    plain = extract_features(model, dataset.query[:2], tf, progress=False).feats
    flipped = extract_features(model, dataset.query[:2], tf, flip=True, progress=False).feats
    x = torch.stack([tf(read_image(s.path)) for s in dataset.query[:2]])
    with torch.no_grad():
        expected = (model(x) + model(x.flip(3))) / 2
    torch.testing.assert_close(flipped, expected)
    assert not torch.allclose(plain, flipped)


def test_a_corrupt_image_is_named_or_skipped_and_counted(world_copy):
    root, victim = world_copy
    dataset = load_dataset("market1501", root)
    tf = build_eval_transform(64, 32)
    with pytest.raises(OSError, match=victim.name):
        extract_features(_tiny_model(), dataset.query, tf, progress=False)
    feats = extract_features(_tiny_model(), dataset.query, tf, skip_unreadable=True, progress=False)
    assert feats.skipped == [str(victim)]
    assert feats.feats.shape[0] == 31 and str(victim) not in feats.paths
