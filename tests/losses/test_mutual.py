import math

import pytest
import torch

from omnireid.losses.mutual import kl_divergence, mutual_learning_loss


def test_zero_for_identical_logits():
    torch.manual_seed(0)
    logits = torch.randn(4, 6)
    terms = mutual_learning_loss(logits, logits.clone())
    assert set(terms) == {"mutual_1", "mutual_2"}
    assert all(abs(t.item()) < 1e-6 for t in terms.values())


def test_hand_computed_kl_directions():
    # p1 = [1/2, 1/2], p2 = [1/4, 3/4].
    logits1 = torch.tensor([[0.0, 0.0]])
    logits2 = torch.tensor([[0.0, math.log(3.0)]])
    terms = mutual_learning_loss(logits1, logits2)
    kl_p2_p1 = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    kl_p1_p2 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert terms["mutual_1"].item() == pytest.approx(kl_p2_p1, rel=1e-5)
    assert terms["mutual_2"].item() == pytest.approx(kl_p1_p2, rel=1e-5)
    assert kl_divergence(logits2, logits1).item() == pytest.approx(kl_p2_p1, rel=1e-5)


def test_positive_and_batch_mean():
    torch.manual_seed(1)
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    terms = mutual_learning_loss(a, b)
    assert terms["mutual_1"].item() > 0 and terms["mutual_2"].item() > 0
    per_row = [kl_divergence(b[i : i + 1], a[i : i + 1]).item() for i in range(3)]
    assert terms["mutual_1"].item() == pytest.approx(sum(per_row) / 3, rel=1e-5)


def test_gradients_flow_only_into_own_network():
    torch.manual_seed(2)
    logits1 = torch.randn(4, 3, requires_grad=True)
    logits2 = torch.randn(4, 3, requires_grad=True)
    terms = mutual_learning_loss(logits1, logits2)
    terms["mutual_1"].backward()
    assert logits1.grad is not None and logits1.grad.abs().sum() > 0
    assert logits2.grad is None
    logits1.grad = None
    terms["mutual_2"].backward()
    assert logits2.grad is not None and logits2.grad.abs().sum() > 0
    assert logits1.grad is None


def test_shape_mismatch():
    with pytest.raises(ValueError, match="one shape"):
        mutual_learning_loss(torch.zeros(2, 3), torch.zeros(2, 4))
