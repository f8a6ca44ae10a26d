import pytest
import torch

from omnireid.losses.triplet import (
    batch_hard_triplet_loss,
    embedding_statistics,
    pairwise_euclidean,
)

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


def test_anchor_without_positive_skipped_or_counted_at_zero_distance():
    # A third identity with one sample. New negatives: d(0, 4) = 3 -> anchor 0: relu(5 - 3 +
    # 0.3) = 2.3; anchor 1: d(1, 4) = 4, min(5, 5, 4) = 4 -> 1.3; anchor 2: d(2, 4) = 3 -> 8 - 3
    # + 0.3 = 5.3; anchor 3: 3.3. Anchor 4 has no positive; its nearest negative is point 0 at 3.
    points = torch.cat([POINTS, torch.tensor([[3.0, 0.0]])])
    pids = torch.cat([PIDS, torch.tensor([2])])
    skipped = batch_hard_triplet_loss(points, pids, no_positive="skip")
    assert skipped.item() == pytest.approx((2.3 + 1.3 + 5.3 + 3.3) / 4, abs=1e-5)
    # The reference's semantics: anchor 4 counts with d(a, p) = 0: relu(0 - 3 + 0.3) = 0, and
    # the mean is over all 5 anchors.
    counted = batch_hard_triplet_loss(points, pids)
    assert counted.item() == pytest.approx((2.3 + 1.3 + 5.3 + 3.3 + 0.0) / 5, abs=1e-5)
    lonely = torch.tensor([[0.0, 0.0], [0.1, 0.0]])  # two lonely anchors 0.1 apart: 0.2 each
    assert batch_hard_triplet_loss(lonely, torch.tensor([0, 1])).item() == pytest.approx(0.2)


def test_random_batches_match_the_reference_implementation():
    """torchreid 0.2.5's TripletLoss on batches where some identities appear once."""
    reference = pytest.importorskip("torchreid.reid.losses", reason="needs torchreid 0.2.5")
    torch.manual_seed(0)
    for _ in range(5):
        features = torch.randn(32, 16)
        pids = torch.randint(0, 20, (32,))  # random batches: many lonely anchors
        ours = batch_hard_triplet_loss(features, pids, margin=0.3)
        theirs = reference.TripletLoss(margin=0.3)(features, pids)
        assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)


def test_embedding_statistics_tell_a_collapse():
    stats = embedding_statistics(POINTS, PIDS, margin=0.3)
    # pairwise distances 5, 6, 10, 5, 5, 8 (mean 39 / 6); norms 0, 5, 6, 10 (mean 21 / 4)
    assert stats["feat_dist"] == pytest.approx(39 / 6, abs=1e-5)
    assert stats["feat_norm"] == pytest.approx(21 / 4, abs=1e-5)
    assert stats["feat_spread"] == pytest.approx((39 / 6) / (21 / 4), abs=1e-5)
    # violated margins (hand-computed above): anchors 1, 2, 3 -> 3 of 4
    assert stats["active_triplets"] == pytest.approx(0.75)
    collapsed = embedding_statistics(torch.ones(4, 8) + 1e-4 * torch.randn(4, 8), PIDS)
    assert collapsed["feat_spread"] < 1e-3 and collapsed["active_triplets"] == 1.0


def test_duplicate_points_give_finite_gradients():
    features = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]], requires_grad=True)
    batch_hard_triplet_loss(features, PIDS).backward()
    assert torch.isfinite(features.grad).all()


def test_errors_on_batches_without_pairs():
    with pytest.raises(ValueError, match="positive pair"):
        batch_hard_triplet_loss(POINTS, torch.tensor([0, 1, 2, 3]), no_positive="skip")
    with pytest.raises(ValueError, match="two identities"):
        batch_hard_triplet_loss(POINTS, torch.tensor([7, 7, 7, 7]))
    with pytest.raises(ValueError, match="expected"):
        batch_hard_triplet_loss(POINTS, torch.tensor([0, 0, 1]))
