import pytest
import torch

from omnireid.losses.triplet import batch_hard_triplet_loss, pairwise_euclidean

# pids [0, 0, 1, 1]. Distances: d01 = 5, d23 = 8, d02 = 6, d03 = 10, d12 = 5, d13 = 5.
POINTS = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 0.0], [6.0, 8.0]])
PIDS = torch.tensor([0, 0, 1, 1])


def test_pairwise_euclidean_not_squared():
    d = pairwise_euclidean(POINTS)
    expected = torch.tensor(
        [[0.0, 5.0, 6.0, 10.0], [5.0, 0.0, 5.0, 5.0], [6.0, 5.0, 0.0, 8.0], [10.0, 5.0, 8.0, 0.0]]
    )
    assert torch.allclose(d, expected, atol=1e-5)


def test_hand_computed_four_points():
    # anchor 0: relu(5 - 6 + 0.3) = 0;   anchor 1: relu(5 - 5 + 0.3) = 0.3
    # anchor 2: relu(8 - 5 + 0.3) = 3.3; anchor 3: relu(8 - 5 + 0.3) = 3.3 -> mean 6.9 / 4.
    loss = batch_hard_triplet_loss(POINTS, PIDS, margin=0.3)
    assert loss.item() == pytest.approx(6.9 / 4, abs=1e-5)
    assert batch_hard_triplet_loss(POINTS, PIDS, margin=0.0).item() == pytest.approx(6.0 / 4)


def test_anchor_without_positive_is_left_out():
    # A third identity with one sample: its own anchor is skipped, it still acts as a negative.
    points = torch.cat([POINTS, torch.tensor([[3.0, 0.0]])])
    pids = torch.cat([PIDS, torch.tensor([2])])
    # New negatives: d(0, 4) = 3 -> anchor 0: relu(5 - 3 + 0.3) = 2.3; anchor 1: d(1, 4) = 4,
    # min(5, 5, 4) = 4 -> 1.3; anchor 2: d(2, 4) = 3 -> 8 - 3 + 0.3 = 5.3; anchor 3: 3.3.
    loss = batch_hard_triplet_loss(points, pids)
    assert loss.item() == pytest.approx((2.3 + 1.3 + 5.3 + 3.3) / 4, abs=1e-5)


def test_duplicate_points_give_finite_gradients():
    features = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]], requires_grad=True)
    batch_hard_triplet_loss(features, PIDS).backward()
    assert torch.isfinite(features.grad).all()


def test_errors_on_batches_without_pairs():
    with pytest.raises(ValueError, match="positive pair"):
        batch_hard_triplet_loss(POINTS, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="two identities"):
        batch_hard_triplet_loss(POINTS, torch.tensor([7, 7, 7, 7]))
    with pytest.raises(ValueError, match="expected"):
        batch_hard_triplet_loss(POINTS, torch.tensor([0, 0, 1]))
