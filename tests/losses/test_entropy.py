import math

import pytest
import torch

from omnireid.losses.entropy import prediction_entropy


def test_uniform_is_log_c():
    assert prediction_entropy(torch.zeros(3, 5)).item() == pytest.approx(math.log(5), rel=1e-6)
    # Equal logits of any value are uniform too.
    assert prediction_entropy(torch.full((2, 4), 7.0)).item() == pytest.approx(math.log(4))


def test_one_hot_is_zero():
    logits = torch.tensor([[100.0, 0.0, 0.0], [0.0, 0.0, 100.0]])
    assert prediction_entropy(logits).item() == pytest.approx(0.0, abs=1e-6)


def test_two_class_hand_computed_and_batch_mean():
    # p = [1/3, 2/3] -> H = ln 3 - (2/3) ln 2; averaged with a uniform row (ln 2).
    logits = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    h1 = math.log(3.0) - 2.0 / 3.0 * math.log(2.0)
    assert prediction_entropy(logits).item() == pytest.approx((h1 + math.log(2.0)) / 2)


def test_bad_shape():
    with pytest.raises(ValueError, match="expected"):
        prediction_entropy(torch.zeros(5))
