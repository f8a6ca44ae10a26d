import json

import numpy as np
import pytest

from omnireid.errors import UsageError
from omnireid.evaluation.verification import calibrate
from omnireid.serve.service import read_threshold


@pytest.fixture
def verification(tmp_path):
    """A verification.json as `omnireid calibrate` writes it, from hand-made pair scores."""
    rng = np.random.default_rng(0)
    genuine, impostor = rng.uniform(0.6, 1.0, 500), rng.uniform(-0.2, 0.7, 5000)
    summary = calibrate(genuine, impostor, target_fpr=1e-3)
    summary.update(arch="osnet_x0_25", weights="w.pt", dataset="market1501")
    path = tmp_path / "verification.json"
    path.write_text(json.dumps(summary))
    return path, summary


def test_the_suggested_threshold_or_one_for_another_fpr(verification):
    path, summary = verification
    t = read_threshold(path, "osnet_x0_25", None)
    assert (t.value, t.target_fpr) == (summary["suggested"]["threshold"], 1e-3)
    t = read_threshold(path, "osnet_x0_25", 1e-2)
    assert t.value == summary["tpr_at_fpr"]["0.01"]["threshold"] and t.target_fpr == 1e-2
    assert t.value < read_threshold(path, None, 1e-4).value  # a lower FPR needs a higher bar


def test_thresholds_that_do_not_fit_are_refused(verification, tmp_path):
    path, _ = verification
    with pytest.raises(UsageError, match="calibrated for osnet_x0_25, the server runs osnet_x1_0"):
        read_threshold(path, "osnet_x1_0", None)
    with pytest.raises(
        UsageError, match=r"no threshold for FPR 0\.05; it has 0\.01, 0\.001, 0\.0001$"
    ):
        read_threshold(path, "osnet_x0_25", 0.05)
    other = tmp_path / "other.json"
    other.write_text('{"auc": 0.9}')
    with pytest.raises(UsageError, match=r"not a verification\.json"):
        read_threshold(other, None, None)
