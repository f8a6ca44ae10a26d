import math

import pytest
import torch
from torch.nn import functional as F

from omnireid.losses.attributes import (
    attribute_losses,
    deepmar_weights,
    positive_ratios,
    weighted_bce_loss,
)


def test_positive_ratios_are_the_fraction_of_positives_per_attribute():
    labels = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 1, 1]])
    assert positive_ratios(labels).tolist() == [0.5, 0.25, 1.0]


def test_deepmar_weights_are_exp_one_minus_p_on_positives_and_exp_p_on_negatives():
    ratios = torch.tensor([0.25, 0.5])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = [[math.exp(0.75), math.exp(0.5)], [math.exp(0.25), math.exp(0.5)]]
    assert torch.allclose(deepmar_weights(targets, ratios), torch.tensor(expected))


def test_weighted_bce_at_zero_logits_is_mean_weight_times_log_two():
    ratios = torch.tensor([0.25, 0.5])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mean_w = (math.exp(0.75) + math.exp(0.5) + math.exp(0.25) + math.exp(0.5)) / 4
    loss = weighted_bce_loss(torch.zeros(2, 2), targets, ratios)
    assert loss.item() == pytest.approx(mean_w * math.log(2), rel=1e-6)


def test_without_ratios_it_is_plain_bce_and_the_step_gets_one_named_term():
    logits = torch.tensor([[2.0, -1.0, 0.3]])
    targets = torch.tensor([[1.0, 1.0, 0.0]])
    plain = F.binary_cross_entropy_with_logits(logits, targets)
    assert weighted_bce_loss(logits, targets, None).item() == pytest.approx(plain.item())
    terms = attribute_losses(logits, None, targets)
    assert list(terms) == ["bce"] and terms["bce"].item() == pytest.approx(plain.item())


def test_a_rare_positive_pulls_harder_than_a_common_one():
    logits = torch.zeros(1, 2, requires_grad=True)
    weighted_bce_loss(logits, torch.ones(1, 2), torch.tensor([0.1, 0.9])).backward()
    # d/dz of w * BCE at z = 0, y = 1 is -w/2, averaged over the 2 labels.
    expected = [-math.exp(0.9) / 4, -math.exp(0.1) / 4]
    assert torch.allclose(logits.grad, torch.tensor([expected]))


def test_shape_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="must match"):
        weighted_bce_loss(torch.zeros(2, 3), torch.zeros(2, 2), None)
    with pytest.raises(ValueError, match=r"ratios must be \(3,\)"):
        weighted_bce_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="N > 0"):
        positive_ratios(torch.zeros(0, 3))
