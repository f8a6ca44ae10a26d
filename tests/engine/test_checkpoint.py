import errno
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from omnireid.engine import files
from omnireid.engine.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    restore_latest,
    save_checkpoint,
)
from omnireid.errors import CheckpointError, TrainingError
from omnireid.models import build
from omnireid.models.spec import ModelSpec, file_sha256, load_spec
from omnireid.models.weights import load_weights


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.BatchNorm1d(16), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    return model, opt, sched


def _epoch(model, opt, sched):
    """One epoch whose data, dropout and shuffling all come from the global RNGs."""
    model.train()
    order = np.random.permutation(4)
    for i in order:
        x = torch.randn(6, 8) + float(random.random()) + float(i)
        loss = model(x).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sched.step()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    random.seed(1)
    np.random.seed(1)
    model, opt, sched = _setup()
    for _ in range(6):
        _epoch(model, opt, sched)
    uninterrupted = {k: v.clone() for k, v in model.state_dict().items()}

    random.seed(1)
    np.random.seed(1)
    model, opt, sched = _setup()
    for _ in range(3):
        _epoch(model, opt, sched)
    save_checkpoint(tmp_path, model, epoch=3, optimizer=opt, scheduler=sched)
    for _ in range(2):  # the run goes on (and is then "killed"): RNGs move on
        _epoch(model, opt, sched)

    model, opt, sched = _setup(seed=123)  # a fresh process would start from other weights
    state = load_checkpoint(latest_checkpoint(tmp_path), model, optimizer=opt, scheduler=sched)
    assert state.epoch == 3
    for _ in range(3, 6):
        _epoch(model, opt, sched)
    for k, v in model.state_dict().items():
        assert torch.equal(v, uninterrupted[k]), k


def test_weights_are_plain_safetensors_loadable_as_a_model_checkpoint(tmp_path):
    model = build("osnet_x0_25", num_classes=5)
    path = save_checkpoint(tmp_path, model, epoch=1, spec=ModelSpec("osnet_x0_25", num_classes=5))
    other = build("osnet_x0_25", num_classes=5)
    load_weights(other, path / "model.safetensors")
    assert torch.equal(other.conv1.conv.weight, model.conv1.conv.weight)
    assert (path / "meta.json").read_text().count('"arch": "osnet_x0_25"') == 1
    spec = load_spec(path)  # the checkpoint's epoch and the digest of the file beside it
    assert (spec.arch, spec.num_classes, spec.epoch) == ("osnet_x0_25", 5, 1)
    assert spec.weights_sha256 == file_sha256(path / "model.safetensors")


def test_a_format_1_meta_given_to_save_checkpoint_is_written_as_a_spec(tmp_path):
    """Callers not yet moved to ModelSpec still pass the old dict; it is migrated."""
    model = build("osnet_x0_25", num_classes=5)
    pre = {"height": 64, "width": 32, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
    path = save_checkpoint(tmp_path, model, 3, meta={"arch": "osnet_x0_25", "preprocessing": pre})
    spec = load_spec(path)
    assert (spec.arch, spec.epoch, spec.input_size, spec.preprocessing.mean) == (
        "osnet_x0_25",
        3,
        (64, 32),
        (0.5, 0.4, 0.3),
    )


def test_keep_limits_old_checkpoints_and_latest_points_to_the_newest(tmp_path):
    model, opt, _ = _setup()
    for epoch in range(1, 5):
        save_checkpoint(tmp_path, model, epoch, optimizer=opt, keep=2)
    assert sorted(p.name for p in tmp_path.glob("epoch-*")) == ["epoch-0003", "epoch-0004"]
    assert latest_checkpoint(tmp_path).name == "epoch-0004"
    assert latest_checkpoint(tmp_path / "nothing-here") is None


def test_a_kill_mid_write_leaves_the_last_good_checkpoint(tmp_path):
    model, opt, _ = _setup()
    good = save_checkpoint(tmp_path, model, epoch=1, optimizer=opt)
    script = textwrap.dedent(
        f"""
        import os, signal
        from torch import nn
        from omnireid.engine import checkpoint, files
        def dying_write(path, data):  # killed with half of the first file on disk
            path.write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        files.write_synced = dying_write
        checkpoint.save_checkpoint({str(tmp_path)!r}, nn.Linear(2, 2), epoch=2)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    assert latest_checkpoint(tmp_path) == good
    assert not (tmp_path / "epoch-0002").exists()
    state = load_checkpoint(good, _setup()[0])
    assert state.epoch == 1


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_checkpoint(tmp_path, _setup()[0])
    assert os.listdir(tmp_path) == []


def test_the_fp16_loss_scale_is_saved_and_restored(tmp_path):
    """Resuming fp16 training must not restart the loss scale at its initial 2**16."""
    model = nn.Linear(3, 2)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(torch.tensor(1.0))  # the scale exists once used
    scaler.update(new_scale=123.0)
    folder = save_checkpoint(tmp_path, model, 1, scaler=scaler)
    fresh = torch.amp.GradScaler("cpu")
    load_checkpoint(folder, nn.Linear(3, 2), scaler=fresh)
    assert fresh.get_scale() == 123.0


def _two_epochs(folder):
    """A run folder with the checkpoints of epochs 1 and 2 of a linear layer whose weights
    are all 1.0 and 2.0, an SGD optimiser and a schedule."""
    model, opt, sched = _setup()
    for epoch in (1, 2):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
        save_checkpoint(folder, model, epoch, optimizer=opt, scheduler=sched)
    return model, opt, sched


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("no-optimizer", "lacks ['optimizer']"),
        ("no-epoch", "lacks ['epoch']"),
        ("not-a-dict", "not a training state"),
        ("nan-weight", "NaN or infinite values in 1 tensor(s)"),
        ("binary-meta", "meta.json is not valid JSON"),
    ],
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, caplog, damage, reason):
    _two_epochs(tmp_path)
    newest = tmp_path / "epoch-0002"
    state = torch.load(newest / "state.pt", weights_only=True)
    if damage == "no-optimizer":
        del state["optimizer"]
    elif damage == "no-epoch":
        del state["epoch"]
    elif damage == "not-a-dict":
        state = [1, 2, 3]
    torch.save(state, newest / "state.pt")
    if damage == "nan-weight":
        from safetensors.torch import load_file, save_file

        weights = load_file(newest / "model.safetensors")
        weights["0.weight"][3, 1] = float("nan")
        save_file(weights, newest / "model.safetensors")
    if damage == "binary-meta":
        (newest / "meta.json").write_bytes(b"\xff\xfe\x00garbage")
    model, opt, sched = _setup(seed=5)
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        assert restore_latest(tmp_path, model, optimizer=opt, scheduler=sched) == 1
    assert all(torch.equal(p, torch.ones_like(p)) for p in model.parameters())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings  # one line says it
    assert "resuming from epoch-0001 instead of the damaged latest" in warnings[0]
    assert str(newest) in warnings[0] and reason in warnings[0]


def test_a_damaged_latest_pointer_falls_back_to_the_newest_folder(tmp_path):
    _two_epochs(tmp_path)
    (tmp_path / "latest").write_bytes(b"\x80\x81 not text")
    model, opt, sched = _setup(seed=5)
    assert restore_latest(tmp_path, model, optimizer=opt, scheduler=sched) == 2
    assert all(torch.equal(p, torch.full_like(p, 2.0)) for p in model.parameters())


def test_no_intact_checkpoint_is_one_error_naming_the_folder(tmp_path):
    _two_epochs(tmp_path)
    for name in ("epoch-0001", "epoch-0002"):
        (tmp_path / name / "state.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"no checkpoint in {tmp_path} can be read"):
        restore_latest(tmp_path, _setup()[0])


def test_a_full_disk_names_the_folder_and_keeps_the_earlier_checkpoints(tmp_path, monkeypatch):
    model, opt, sched = _two_epochs(tmp_path)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    written = []

    def full_disk(path, data):  # the disk fills up half-way through the second file
        if written:
            path.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(path)
        path.write_bytes(data)

    monkeypatch.setattr(files, "write_synced", full_disk)
    with pytest.raises(TrainingError) as error:
        save_checkpoint(tmp_path, model, 3, optimizer=opt, scheduler=sched, keep=2)
    message = str(error.value)
    assert f"could not write the checkpoint of epoch 3 in {tmp_path}" in message
    assert "No space left on device" in message and "free some space" in message
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing half-written left, nothing earlier removed or changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "epoch-0002", "latest"]
