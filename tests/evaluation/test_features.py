import shutil

import numpy as np
import pytest
import torch

from omnireid.cli import main
from omnireid.data.datasets import load_dataset
from omnireid.data.images import read_image
from omnireid.data.transforms import build_eval_transform
from omnireid.errors import DegenerateFeaturesError, NonFiniteFeaturesError
from omnireid.evaluation.features import FeatureCheck, extract_features
from omnireid.models import build
from tests.deploy.helpers import trained_like


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


# --- FeatureCheck: the one check of features on every backend ---------------------------------
def _checked(feats, inputs) -> None:
    guard = FeatureCheck("test images")
    guard.see(torch.tensor(inputs, dtype=torch.float32).reshape(len(inputs), 1, 1, -1))
    guard.check(torch.tensor(feats, dtype=torch.float32))


def test_feature_check_refuses_one_feature_for_different_images_only():
    with pytest.raises(DegenerateFeaturesError, match="all 3 test images gave the same feature"):
        _checked([[0.6, 0.8]] * 3, [[1.0], [2.0], [3.0]])
    with pytest.raises(DegenerateFeaturesError, match="all 2 test images"):  # all-zero
        _checked([[0.0, 0.0]] * 2, [[1.0], [2.0]])
    # within 1e-6 of the largest |value| (8.0) counts as the same: 5e-6 < 8e-6
    with pytest.raises(DegenerateFeaturesError):
        _checked([[6.0, 8.0], [6.0, 8.000005]], [[1.0], [2.0]])
    _checked([[6.0, 8.0], [6.0, 8.00002]], [[1.0], [2.0]])  # 2e-5 > 8e-6: two features
    _checked([[0.6, 0.8]], [[1.0]])  # one image cannot be told from a constant model
    _checked([[0.6, 0.8]] * 3, [[1.0]] * 3)  # copies of one image rightly give one feature


def test_feature_check_counts_non_finite_inputs_and_features():
    with pytest.raises(NonFiniteFeaturesError, match="2 of 3 test images in a batch are NaN"):
        _checked([[1.0], [2.0], [3.0]], [[1.0], [float("nan")], [float("-inf")]])
    with pytest.raises(NonFiniteFeaturesError, match="1 of 2 test images gave NaN"):
        _checked([[1.0, float("nan")], [1.0, 2.0]], [[1.0], [2.0]])


def test_the_inputs_of_later_batches_count_too():
    guard = FeatureCheck()
    guard.see(torch.ones(2, 3, 4, 2))  # two copies of one image...
    assert not guard.inputs_differ
    guard.see(torch.zeros(1, 3, 4, 2))  # ...and another in the next batch
    assert guard.inputs_differ
    with pytest.raises(DegenerateFeaturesError, match="all 3 images"):
        guard.check(np.full((3, 4), 0.5, np.float32))


def test_evaluation_of_a_degenerate_model_stops_with_one_line(tiny_world, tmp_path, capsys):
    """Zero first-layer weights: every image gets the same feature, on the default (BN-folded)
    backend as on the plain model; evaluation says so instead of reporting metrics."""
    model = trained_like("osnet_x0_25")
    with torch.no_grad():
        model.conv1.conv.weight.zero_()
    zero = tmp_path / "zero.pt"
    torch.save(model.state_dict(), zero)
    argv = ["evaluate", "--weights", str(zero), "--dataset", "market1501", "--root",
            str(tiny_world), "--height", "64", "--width", "32", "--backend"]  # fmt: skip
    for backend in ("fast", "torch"):
        assert main([*argv, backend]) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("omnireid evaluate: error")]
        assert "Traceback" not in err and len(errors) == 1
        assert "error: all 32 query images gave the same feature" in errors[0]
