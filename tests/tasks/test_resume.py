"""A run folder is continued only with the config it was trained with, by one process."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omnireid.config import load_config
from omnireid.engine.lock import RunLock, RunLockedError
from omnireid.errors import ConfigError
from omnireid.tasks import fit_from_config
from omnireid.tasks.resume import config_changes
from tests.conftest import tiny_training
from tests.engine.helpers import lock_holder


@pytest.fixture
def finished(tiny_world: Path, tmp_path: Path) -> tuple[list[str], Path]:
    run = tmp_path / "run"
    overrides = tiny_training(tiny_world, run, "optim.lr=0.004")
    fit_from_config(load_config(None, overrides))
    return overrides, run


def test_a_changed_training_setting_is_refused_and_nothing_is_rewritten(finished):
    overrides, run = finished
    before = (run / "config.json").read_text()
    with pytest.raises(ConfigError, match=r"optim\.max_epoch 1 -> 2.*--extend"):
        fit_from_config(load_config(None, [*overrides, "optim.max_epoch=2"]))
    with pytest.raises(ConfigError, match=r"optim\.lr 0\.004 -> 0\.003") as err:
        fit_from_config(load_config(None, [*overrides, "optim.lr=0.003", "train.extend=true"]))
    assert "--extend" not in str(err.value)  # an lr change cannot be an extension
    with pytest.raises(ConfigError, match=r"model\.arch 'osnet_x0_25' -> 'osnet_ain_x0_25'"):
        fit_from_config(load_config(None, [*overrides, "model.arch=osnet_ain_x0_25"]))
    assert (run / "config.json").read_text() == before


def test_settings_that_do_not_change_the_training_may_differ(finished):
    overrides, run = finished
    free = ["train.eval_every=5", "test.metric=cosine", "data.workers=1", "train.keep=1"]
    assert fit_from_config(load_config(None, [*overrides, *free])) == []  # already complete
    assert json.loads((run / "config.json").read_text())["test"]["metric"] == "cosine"


def test_an_extension_rebuilds_the_schedule_and_records_the_change(finished):
    overrides, run = finished
    longer = [*overrides, "optim.max_epoch=2", "train.extend=true"]
    records = fit_from_config(load_config(None, longer))
    # epoch 2 of a 2-epoch cosine schedule: lr 0.004 x (1 + cos(pi / 2)) / 2
    assert [r["epoch"] for r in records] == [2] and records[0]["lr"] == pytest.approx(0.002)
    change = json.loads((run / "changes.jsonl").read_text())
    assert change == {"epoch": 1, "changes": {"optim.max_epoch": [1, 2]}}
    assert json.loads((run / "config.json").read_text())["optim"]["max_epoch"] == 2


def test_keys_added_later_count_as_their_default():
    stored = {"optim": {"lr": 0.1}, "train": {"seed": 0}}  # an older config.json
    new = {"optim": {"lr": 0.1}, "train": {"seed": 0, "collapse": "warn"}, "data": {}}
    assert config_changes(stored, new) == {}
    assert config_changes(stored, {"optim": {"lr": 0.2}}) == {"optim.lr": (0.1, 0.2)}


def test_a_section_only_another_task_reads_is_not_compared():
    # a re-ID run saved when the search's temperature floor defaulted to 1.7
    stored = {"train": {"task": "reid"}, "search": {"min_temperature": 1.7, "in_affine": False}}
    assert config_changes(stored, {"train": {"task": "reid"}, "search": {}}) == {}
    nas = {"train": {"task": "nas"}, "search": {"min_temperature": 1.7}}
    assert config_changes(nas, {"train": {"task": "nas"}}) == {"search.min_temperature": (1.7, 1.0)}
    adapt = {"train": {"task": "adapt"}, "adapt": {"eps": 0.6}}
    assert config_changes(adapt, {"train": {"task": "adapt"}}) == {"adapt.eps": (0.6, 0.5)}


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_lives(
    tiny_world: Path, tmp_path: Path
):
    with lock_holder(tmp_path) as holder, pytest.raises(RunLockedError, match=f"{holder.pid}"):
        fit_from_config(load_config(None, tiny_training(tiny_world, tmp_path)))
    assert not (tmp_path / "config.json").exists()


def test_a_stale_lock_is_taken_over_and_a_run_releases_its_own(tmp_path: Path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = {"host": socket.gethostname(), "pid": dead.pid, "started": time.time()}
    (tmp_path / ".lock").write_text(json.dumps(owner))
    with caplog.at_level(logging.WARNING, logger="omnireid"), RunLock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert "stale lock" in caplog.text and not (tmp_path / ".lock").exists()


def test_training_holds_the_lock_and_leaves_none_behind(tiny_world: Path, tmp_path: Path):
    fit_from_config(load_config(None, tiny_training(tiny_world, tmp_path)))
    assert not (tmp_path / ".lock").exists()
