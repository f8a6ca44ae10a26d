import subprocess
import sys

from omnireid.cli import main
from omnireid.models import list_models


def test_models_lists_every_architecture(capsys):
    assert main(["models"]) == 0
    assert capsys.readouterr().out.split() == list_models()


def test_complexity_with_ablation_options(capsys):
    assert main(["complexity", "osnet_x1_0", "--streams", "1"]) == 0
    single = capsys.readouterr().out
    assert main(["complexity", "osnet_x1_0"]) == 0
    assert "978.9M mult-adds" in capsys.readouterr().out
    assert "978.9M" not in single


def test_unknown_architecture_is_a_clear_error(capsys):
    assert main(["complexity", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert "unknown architecture 'resnet50'" in err and "osnet_x1_0" in err


def test_demo_prints_the_family_summary(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("osnet_x1_0 "))
    assert row.split()[1:] == ["2.17", "978.9", "550.7", "244.9", "61.5"]


def test_console_entry_point_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "omnireid", "complexity", "osnet_x0_25", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"mult_adds": 82316000' in done.stdout
