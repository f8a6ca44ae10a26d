"""Verification scores, operating points and ROC against small hand-computed cases."""

import json

import numpy as np
import pytest
import torch

from omnireid.cli import main
from omnireid.evaluation.verification import calibrate, operating_point, pair_scores, roc_curve
from tests.visualize.images import check_image

GENUINE = np.array([0.9, 0.8, 0.6, 0.4])
IMPOSTOR = np.array([0.85, 0.7, 0.5, 0.45, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05])


def test_pair_scores_split_genuine_impostor_and_drop_same_camera_pairs():
    qf = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gf = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    genuine, impostor = pair_scores(qf, gf, [1, 2], [1, 1, 2, 3], [0, 0], [0, 1, 1, 1])
    # q0-g0 is the same id on the same camera: junk, in neither list.
    np.testing.assert_allclose(np.sort(genuine), [1.0, 1.0], atol=1e-6)
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(np.sort(impostor), [0, 0, 0, r, r], atol=1e-6)


def test_pair_scores_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pair_scores(torch.zeros(2, 3), torch.zeros(2, 4), [1, 2], [1, 2], [0, 0], [1, 1])


@pytest.mark.parametrize(
    ("target", "threshold", "tpr", "fpr", "resolvable"),
    [
        (0.1, 0.8, 0.5, 0.1, True),  # one false accept allowed: 0.85; next score above 0.7
        (0.3, 0.5, 0.75, 0.3, True),  # three allowed: 0.85, 0.7, 0.5
        (0.05, 0.9, 0.25, 0.0, False),  # none allowed among only 10 impostors
        (1.0, 0.05, 1.0, 1.0, True),  # everything accepted
    ],
)
def test_operating_point_hand_computed(target, threshold, tpr, fpr, resolvable):
    p = operating_point(GENUINE, IMPOSTOR, target)
    assert p.threshold == pytest.approx(threshold)
    assert (p.tpr, p.fpr, p.resolvable) == (pytest.approx(tpr), pytest.approx(fpr), resolvable)


def test_operating_point_rejects_bad_target():
    with pytest.raises(ValueError, match="target FPR"):
        operating_point(GENUINE, IMPOSTOR, 0.0)


def test_roc_and_auc_hand_computed():
    fpr, tpr, thresholds = roc_curve(GENUINE, IMPOSTOR)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(thresholds) < 0)
    # AUC = P(genuine > impostor) = (10 + 9 + 8 + 6) / 40.
    assert calibrate(GENUINE, IMPOSTOR, 0.1)["auc"] == pytest.approx(33 / 40)
    fpr, tpr, _ = roc_curve(np.array([0.5]), np.array([0.5]))  # a tie is one step
    np.testing.assert_allclose(np.c_[fpr, tpr], [[0, 0], [1, 1]])


def test_calibrate_summary():
    s = calibrate(GENUINE, IMPOSTOR, target_fpr=0.3, report_fprs=(0.1,))
    assert (s["num_genuine"], s["num_impostor"]) == (4, 10)
    assert s["suggested"]["threshold"] == pytest.approx(0.5)
    assert s["tpr_at_fpr"]["0.1"]["tpr"] == pytest.approx(0.5)


def test_calibrate_command_on_market_mini(market_mini, market_weights, tmp_path):
    out = tmp_path / "cal"
    argv = ["calibrate", "--arch", "osnet_x0_25", "--weights", str(market_weights)]
    argv += ["--dataset", "market1501", "--root", str(market_mini), "--out", str(out)]
    assert main([*argv, "--target-fpr", "0.01"]) == 0  # the checkpoint's 256x128
    summary = json.loads((out / "verification.json").read_text())
    # 16 queries x 52 gallery images; every query has >= 2 other-camera matches.
    assert summary["num_genuine"] >= 32
    assert summary["num_genuine"] + summary["num_impostor"] <= 16 * 52
    assert summary["genuine_mean"] > summary["impostor_mean"]
    assert summary["auc"] > 0.95  # measured 0.992 (0.79 at 128x64; chance 0.5)
    assert summary["suggested"]["fpr"] <= 0.01 and summary["suggested"]["resolvable"]
    check_image(out / "roc.png", (1100, 400))
