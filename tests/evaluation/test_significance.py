import numpy as np
import pytest

from omnireid.evaluation.significance import paired_bootstrap


def test_a_constant_difference_has_no_spread():
    a = np.array([3.0, 5.0, 1.0, 8.0])
    interval = paired_bootstrap(a, a - 2.0, reps=500)
    assert (interval.mean, interval.low, interval.high) == pytest.approx((2.0, 2.0, 2.0))


def test_swapping_the_models_negates_the_interval():
    rng = np.random.default_rng(3)
    a, b = rng.random(50), rng.random(50)
    ab, ba = paired_bootstrap(a, b, seed=1), paired_bootstrap(b, a, seed=1)
    assert (ab.mean, ab.low, ab.high) == pytest.approx((-ba.mean, -ba.high, -ba.low))


def test_the_interval_has_the_width_the_normal_theory_predicts():
    # differences ~ N(0.3, 1) over 2,500 queries: the 95% interval is about mean +- 1.96/50
    diff = np.random.default_rng(0).normal(0.3, 1.0, 2500)
    interval = paired_bootstrap(diff, np.zeros_like(diff), reps=4000)
    assert interval.low < 0.3 < interval.high
    assert interval.high - interval.low == pytest.approx(2 * 1.96 / 50, rel=0.1)
    assert str(interval).endswith("(95%)")


def test_pairing_removes_what_the_two_models_share():
    # big per-query differences that both models share cancel: only the +1 offset remains
    shared = np.random.default_rng(1).normal(0, 100, 300)
    interval = paired_bootstrap(shared + 1.0, shared)
    assert interval.low == pytest.approx(1.0) and interval.high == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a", "b", "options"),
    [
        ([1.0], [1.0, 2.0], {}),
        ([], [], {}),
        ([1.0], [2.0], {"reps": 0}),
        ([1.0], [2.0], {"level": 1}),
    ],
)
def test_bad_input_is_refused(a, b, options):
    with pytest.raises(ValueError, match="paired_bootstrap needs"):
        paired_bootstrap(np.array(a), np.array(b), **options)
