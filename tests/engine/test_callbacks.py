import json
import logging

import pytest
import torch
from torch import nn

from omnireid.engine.callbacks import (
    Checkpointer,
    CollapseDetector,
    Evaluator,
    FinalMetrics,
    FreezeBase,
    read_jsonl,
    truncate_jsonl,
)
from omnireid.engine.checkpoint import latest_checkpoint, restore_latest, save_checkpoint
from omnireid.errors import NonFiniteLossError, TrainingError
from tests.engine.helpers import bare_loop


@pytest.mark.parametrize(
    ("every", "expected"),
    [(0, [10]), (3, [3, 6, 9, 10]), (5, [5, 10]), (1, list(range(1, 11)))],
)
def test_evaluator_runs_every_n_epochs_and_after_the_last(every, expected):
    calls = []
    evaluator = Evaluator(lambda m: calls.append(1) or {"rank1": 50.0}, every)
    done = []
    for epoch in range(10):
        loop = bare_loop(epoch=epoch)
        evaluator.on_epoch_end(loop)
        if "rank1" in loop.record:
            done.append(epoch + 1)
    assert done == expected and len(calls) == len(expected)


def test_evaluator_refuses_non_finite_metrics():
    with pytest.raises(NonFiniteLossError, match="mAP"):
        Evaluator(lambda m: {"rank1": 1.0, "mAP": float("nan")}).on_epoch_end(bare_loop(epoch=9))


def test_collapse_detector_warns_or_stops_below_its_threshold(caplog):
    healthy = bare_loop(record={"feat_dist": 0.5})
    CollapseDetector("feat_dist", 0.05, "stop").on_epoch_end(healthy)
    assert "collapsed" not in healthy.record
    collapsed = bare_loop(epoch=3, record={"feat_dist": 0.001})
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        CollapseDetector("feat_dist", 0.05, "warn").on_epoch_end(collapsed)
    assert collapsed.record["collapsed"] == 1.0
    assert "epoch 4: the embedding has collapsed (feat_dist 0.001 < 0.05)" in caplog.text
    with pytest.raises(TrainingError, match="training stopped") as stopped:
        CollapseDetector("feat_dist", 0.05, "stop").on_epoch_end(collapsed)
    assert "try a triplet warm-up, model.bnneck, or a lower lr" in str(stopped.value)


def test_checkpointer_refuses_non_finite_weights_and_keeps_the_previous_latest(tmp_path):
    model = nn.Linear(2, 2)
    loop = bare_loop(model, epoch=0)
    checkpointer = Checkpointer(tmp_path, optimizer=loop.optimizer)
    checkpointer.on_epoch_end(loop)
    assert latest_checkpoint(tmp_path).name == "epoch-0001"
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    loop.epoch, loop.record = 1, {"epoch": 2}
    with pytest.raises(NonFiniteLossError, match=r"non-finite values in 1 tensor.*weight"):
        checkpointer.on_epoch_end(loop)
    assert latest_checkpoint(tmp_path).name == "epoch-0001"
    assert not (tmp_path / "epoch-0002").exists()


def test_checkpointer_checks_the_optimizer_state_too(tmp_path):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    next(iter(optimizer.state.values()))["momentum_buffer"].fill_(float("nan"))
    loop = bare_loop(model)
    with pytest.raises(NonFiniteLossError, match="momentum_buffer"):
        Checkpointer(tmp_path, optimizer=optimizer).on_epoch_end(loop)


def test_truncate_jsonl_drops_epochs_after_the_resume_point(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3, 4)))
    truncate_jsonl(path, 2)
    assert [json.loads(x)["epoch"] for x in path.read_text().splitlines()] == [1, 2]
    truncate_jsonl(tmp_path / "missing.jsonl", 0)  # nothing to do


@pytest.mark.parametrize(
    "last_line", [b'{"epoch": 3, "loss": 0.', b"\x00\xff\xfe\x80 binary\n", b"[1, 2]\n"]
)
def test_a_damaged_last_line_is_dropped_atomically_with_a_warning(tmp_path, caplog, last_line):
    """A run killed while appending its log: the line cut short (or garbage) is dropped, the
    rest kept, the file replaced whole (no temporary file left beside it)."""
    path = tmp_path / "log.jsonl"
    path.write_bytes(
        b"".join(json.dumps({"epoch": e}).encode() + b"\n" for e in (1, 2)) + last_line
    )
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        truncate_jsonl(path, 2)
    assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    assert "dropped 1 damaged line(s)" in caplog.text and str(path) in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["log.jsonl"]


def test_final_metrics_writes_the_last_record(tmp_path):
    loop = bare_loop()
    loop.records = [{"epoch": 1, "rank1": 10.0}, {"epoch": 2, "rank1": 20.0}]
    FinalMetrics(tmp_path).on_fit_end(loop)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"epoch": 2, "rank1": 20.0}


def test_freeze_base_opens_only_the_named_layers_then_everything():
    nets = [nn.Sequential(), nn.Sequential()]
    for net in nets:
        net.add_module("body", nn.Linear(2, 2))
        net.add_module("classifier", nn.Linear(2, 2))
    freeze = FreezeBase(nets, epochs=1, open_layers=["classifier"])
    freeze.on_epoch_start(bare_loop(epoch=0))
    for net in nets:
        assert not net.body.weight.requires_grad and net.classifier.weight.requires_grad
        assert not net.body.training and net.classifier.training
    freeze.on_epoch_start(bare_loop(epoch=1))
    assert all(p.requires_grad for net in nets for p in net.parameters())


def test_restore_latest_falls_back_to_the_newest_intact_checkpoint(tmp_path, caplog):
    model = nn.Linear(2, 2)
    for epoch in (1, 2):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        save_checkpoint(tmp_path, model, epoch)
    (tmp_path / "epoch-0002" / "state.pt").write_bytes(b"truncated")
    fresh = nn.Linear(2, 2)
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        assert restore_latest(tmp_path, fresh) == 1
    assert torch.equal(fresh.weight, torch.full((2, 2), 1.0))
    assert "epoch-0002 is damaged" in caplog.text
    assert "resuming from epoch-0001 instead" in caplog.text
    assert restore_latest(tmp_path / "empty", fresh) == 0
