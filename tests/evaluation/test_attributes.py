import pytest
import torch

from omnireid.evaluation.attributes import attribute_metrics, majority_baseline

# 4 images x 3 attributes. Per attribute (TPR, TNR): (1, 1), (1, 2/3), (1/2, 1) -> mA 31/36.
# Per image (acc, prec, rec): (1/2, 1, 1/2), (1/2, 1/2, 1), (1, 1, 1), both empty (1, 1, 1).
LABELS = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]])
PREDS = torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_hand_computed_label_and_instance_metrics():
    probs = torch.where(PREDS.bool(), 0.9, 0.1)
    r = attribute_metrics(probs, LABELS)
    assert r.mA == pytest.approx(100 * 31 / 36)
    assert r.per_attribute_mA == pytest.approx((100.0, 100 * 5 / 6, 75.0), abs=1e-3)
    assert r.accuracy == pytest.approx(75.0)
    assert r.precision == pytest.approx(87.5)
    assert r.recall == pytest.approx(87.5)
    assert r.f1 == pytest.approx(87.5)
    assert set(r.as_dict()) == {"mA", "accuracy", "precision", "recall", "f1"}


def test_f1_comes_from_mean_precision_and_mean_recall():
    # Images 0, 2, 3 above: precision (1 + 1 + 1)/3, recall (1/2 + 1 + 1)/3 -> F1 10/11.
    rows = [0, 2, 3]
    r = attribute_metrics(PREDS[rows].float(), LABELS[rows])
    assert r.precision == pytest.approx(100.0)
    assert r.recall == pytest.approx(100 * 2.5 / 3)
    assert r.f1 == pytest.approx(100 * 10 / 11)
    assert r.accuracy == pytest.approx(100 * 2.5 / 3)


def test_zero_denominators_follow_the_documented_conventions():
    labels = torch.tensor([[0, 1], [0, 0]])
    preds = torch.tensor([[0, 0], [1, 0]])
    r = attribute_metrics(preds.float(), labels)
    # Attribute 0 has no positives: its mA term is TNR alone (1/2), not (0 + 1/2)/2.
    # Attribute 1: TPR 0/1, TNR 1/1 -> 1/2.
    assert r.per_attribute_mA == pytest.approx((50.0, 50.0))
    # Image 0 predicts nothing but has a positive: precision 0; image 1 has no positives but
    # predicts one: recall 0. Both have an empty intersection: accuracy 0.
    assert (r.accuracy, r.precision, r.recall, r.f1) == (0.0, 0.0, 0.0, 0.0)


def test_a_perfect_predictor_scores_100_even_with_an_all_negative_attribute():
    labels = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    r = attribute_metrics(labels.float(), labels)
    assert (r.mA, r.accuracy, r.precision, r.recall, r.f1) == (100.0, 100.0, 100.0, 100.0, 100.0)


def test_threshold_is_inclusive_at_one_half():
    r = attribute_metrics(torch.tensor([[0.5, 0.49]]), torch.tensor([[1, 0]]))
    assert r.accuracy == 100.0


def test_majority_baseline_has_ma_50():
    train = torch.tensor([[1, 0], [1, 0], [0, 1]])  # majority: attr 0 -> 1, attr 1 -> 0
    test = torch.tensor([[1, 0], [0, 1], [1, 1]])
    r = majority_baseline(train, test)
    assert r.mA == pytest.approx(50.0)
    # Predicted {0} for every image: acc (1 + 0 + 1/2)/3, prec (1 + 0 + 1)/3, rec (1 + 0 + 1/2)/3.
    assert r.accuracy == pytest.approx(50.0)
    assert r.precision == pytest.approx(100 * 2 / 3)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="same"):
        attribute_metrics(torch.zeros(2, 3), torch.zeros(3, 2))
