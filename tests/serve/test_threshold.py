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


def _edited(path, change):
    summary = json.loads(path.read_text())
    change(summary)
    path.write_text(json.dumps(summary))
    return path


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s.update(suggested="x"), "suggested is not an object with a threshold"),
        (lambda s: s["suggested"].update(threshold=7), "suggested.threshold must be a cosine"),
        (lambda s: s["suggested"].update(threshold=-1.5), "suggested.threshold must be a cosine"),
        (lambda s: s["suggested"].update(threshold="0.5"), "suggested.threshold must be a cosine"),
        (lambda s: s["suggested"].update(threshold=True), "suggested.threshold must be a cosine"),
        (lambda s: s["suggested"].update(threshold=None), "suggested.threshold must be a cosine"),
        (lambda s: s["suggested"].update(target_fpr=2), "suggested.target_fpr must be a number"),
        (lambda s: s.update(tpr_at_fpr=[1]), "tpr_at_fpr is not an object of thresholds"),
    ],
)
def test_values_outside_what_calibrate_writes_are_refused(verification, change, reason):
    """A threshold of 7 made every same_person false, silently; a string crashed the start."""
    path = _edited(verification[0], change)
    with pytest.raises(UsageError) as caught:
        read_threshold(path, "osnet_x0_25", None)
    assert str(caught.value).startswith(f"{path}: {reason}")


def test_the_point_for_a_target_fpr_is_checked_too(verification):
    path = _edited(verification[0], lambda s: s["tpr_at_fpr"]["0.01"].update(threshold=1.2))
    assert read_threshold(path, "osnet_x0_25", None).value <= 1  # the suggested one is fine
    with pytest.raises(UsageError, match=r"tpr_at_fpr\.0\.01\.threshold must be a cosine"):
        read_threshold(path, "osnet_x0_25", 0.01)


def test_serve_refuses_such_a_file_in_one_line(verification, toy_weights, tmp_path, capsys):
    from omnireid.cli import main

    path = _edited(verification[0], lambda s: s["suggested"].update(threshold=7))
    args = ["serve", "--index", str(tmp_path / "g"), "--weights", str(toy_weights), "--no-auth"]
    assert main([*args, "--verification", str(path), "--height", "128", "--width", "64"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert "suggested.threshold must be a cosine similarity in [-1, 1], got 7" in err
