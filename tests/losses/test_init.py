import math

import pytest
import torch

from omnireid.losses import compute_losses

# The four points of test_triplet: batch-hard triplet loss 6.9 / 4 at margin 0.3.
POINTS = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 0.0], [6.0, 8.0]])
PIDS = torch.tensor([0, 0, 1, 1])
# Zero logits over 2 classes: cross-entropy ln 2 whatever the smoothing, entropy ln 2.
LOGITS = torch.zeros(4, 2)


def test_ce_only_by_default():
    terms = compute_losses(LOGITS, None, PIDS)
    assert list(terms) == ["ce"]
    assert terms["ce"].item() == pytest.approx(math.log(2.0))


def test_sum_with_triplet_weight_half():
    terms = compute_losses(LOGITS, POINTS, PIDS, triplet_weight=0.5)
    assert set(terms) == {"ce", "triplet"}
    assert terms["triplet"].item() == pytest.approx(0.5 * 6.9 / 4, abs=1e-5)
    total = sum(terms.values())
    assert total.item() == pytest.approx(math.log(2.0) + 0.5 * 6.9 / 4, abs=1e-5)


def test_entropy_term_is_subtracted():
    terms = compute_losses(LOGITS, POINTS, PIDS, triplet_weight=0.5, entropy_weight=0.1)
    assert terms["entropy"].item() == pytest.approx(-0.1 * math.log(2.0))
    expected = math.log(2.0) + 0.5 * 6.9 / 4 - 0.1 * math.log(2.0)
    assert sum(terms.values()).item() == pytest.approx(expected, abs=1e-5)


def test_margin_and_smoothing_are_passed_on():
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]] * 4)
    terms = compute_losses(
        logits, POINTS, PIDS, label_smoothing=0.3, triplet_weight=1.0, triplet_margin=0.0
    )
    # pids [0, 0, 1, 1] against softmax [1/4, 1/2, 1/4], eps = 0.3 (targets 0.1 / 0.8 / 0.1):
    # class 0 or 1 true -> 0.8 ln 4 + 0.1 ln 2 + 0.1 ln 4 = 1.9 ln 2 or 1.2 ln 2.
    assert terms["ce"].item() == pytest.approx((1.9 + 1.2) / 2 * math.log(2.0), rel=1e-5)
    assert terms["triplet"].item() == pytest.approx(6.0 / 4, abs=1e-5)


def test_triplet_needs_features():
    with pytest.raises(ValueError, match="return_features"):
        compute_losses(LOGITS, None, PIDS, triplet_weight=0.5)
