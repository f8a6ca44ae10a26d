import math

import pytest
import torch
from torch.nn import functional as F

from omnireid.losses.cross_entropy import cross_entropy_label_smooth


def test_hand_computed_three_classes():
    # softmax([0, ln 2, 0]) = [1/4, 1/2, 1/4]; eps = 0.3 -> targets [0.1, 0.8, 0.1] for class 1:
    # 0.1 ln 4 + 0.8 ln 2 + 0.1 ln 4 = 1.2 ln 2.
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
    loss = cross_entropy_label_smooth(logits, torch.tensor([1]), eps=0.3)
    assert loss.item() == pytest.approx(1.2 * math.log(2.0), rel=1e-6)
    # eps = 0 is the plain cross-entropy -ln(1/2).
    plain = cross_entropy_label_smooth(logits, torch.tensor([1]), eps=0.0)
    assert plain.item() == pytest.approx(math.log(2.0), rel=1e-6)


def test_default_eps_is_point_one():
    # targets [1/30, 28/30, 1/30]: (2/30) ln 4 + (28/30) ln 2 = (32/30) ln 2.
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
    loss = cross_entropy_label_smooth(logits, torch.tensor([1]))
    assert loss.item() == pytest.approx(32 / 30 * math.log(2.0), rel=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_matches_torch_label_smoothing(eps):
    # torch's label_smoothing uses the same (1 - eps) onehot + eps / C targets.
    torch.manual_seed(0)
    logits, pids = torch.randn(8, 5), torch.randint(0, 5, (8,))
    ours = cross_entropy_label_smooth(logits, pids, eps=eps)
    theirs = F.cross_entropy(logits, pids, label_smoothing=eps)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_gradient_is_softmax_minus_target():
    logits = torch.zeros(1, 4, requires_grad=True)
    cross_entropy_label_smooth(logits, torch.tensor([2]), eps=0.2).backward()
    # p = 1/4 everywhere; q = [0.05, 0.05, 0.85, 0.05].
    assert torch.allclose(logits.grad, torch.tensor([[0.2, 0.2, -0.6, 0.2]]))


def test_bad_inputs():
    with pytest.raises(ValueError, match="expected"):
        cross_entropy_label_smooth(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="eps"):
        cross_entropy_label_smooth(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), eps=1.0)
