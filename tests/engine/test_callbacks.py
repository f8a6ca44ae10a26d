import json
import logging
import math

import pytest
import torch
from torch import nn

from omnireid.engine.callbacks import (
    Checkpointer,
    CollapseDetector,
    Evaluator,
    FinalMetrics,
    FreezeBase,
    Ramp,
    TimeBudget,
    truncate_jsonl,
)
from omnireid.engine.checkpoint import latest_checkpoint, restore_latest, save_checkpoint
from omnireid.engine.loop import Loop
from omnireid.errors import NonFiniteLossError, TrainingError


def _loop(model=None, epoch=0, max_epoch=10, record=None):
    model = model or nn.Linear(2, 2)
    loop = Loop(model, torch.optim.SGD(model.parameters(), lr=0.1), max_epoch)
    loop.epoch = epoch
    loop.record = {"epoch": epoch + 1, **(record or {})}
    return loop


@pytest.mark.parametrize(
    ("every", "expected"),
    [(0, [10]), (3, [3, 6, 9, 10]), (5, [5, 10]), (1, list(range(1, 11)))],
)
def test_evaluator_runs_every_n_epochs_and_after_the_last(every, expected):
    calls = []
    evaluator = Evaluator(lambda m: calls.append(1) or {"rank1": 50.0}, every)
    done = []
    for epoch in range(10):
        loop = _loop(epoch=epoch)
        evaluator.on_epoch_end(loop)
        if "rank1" in loop.record:
            done.append(epoch + 1)
    assert done == expected and len(calls) == len(expected)


def test_evaluator_refuses_non_finite_metrics():
    with pytest.raises(NonFiniteLossError, match="mAP"):
        Evaluator(lambda m: {"rank1": 1.0, "mAP": float("nan")}).on_epoch_end(_loop(epoch=9))


def test_collapse_detector_warns_or_stops_below_its_threshold(caplog):
    healthy = _loop(record={"feat_dist": 0.5})
    CollapseDetector("feat_dist", 0.05, "stop").on_epoch_end(healthy)
    assert "collapsed" not in healthy.record
    collapsed = _loop(epoch=3, record={"feat_dist": 0.001})
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        CollapseDetector("feat_dist", 0.05, "warn").on_epoch_end(collapsed)
    assert collapsed.record["collapsed"] == 1.0
    assert "epoch 4: the embedding has collapsed (feat_dist 0.001 < 0.05)" in caplog.text
    with pytest.raises(TrainingError, match="training stopped"):
        CollapseDetector("feat_dist", 0.05, "stop").on_epoch_end(collapsed)


def test_checkpointer_refuses_non_finite_weights_and_keeps_the_previous_latest(tmp_path):
    model = nn.Linear(2, 2)
    loop = _loop(model, epoch=0)
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
    loop = _loop(model)
    with pytest.raises(NonFiniteLossError, match="momentum_buffer"):
        Checkpointer(tmp_path, optimizer=optimizer).on_epoch_end(loop)


def test_truncate_jsonl_drops_epochs_after_the_resume_point(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3, 4)))
    truncate_jsonl(path, 2)
    assert [json.loads(x)["epoch"] for x in path.read_text().splitlines()] == [1, 2]
    truncate_jsonl(tmp_path / "missing.jsonl", 0)  # nothing to do


def test_final_metrics_writes_the_last_record(tmp_path):
    loop = _loop()
    loop.records = [{"epoch": 1, "rank1": 10.0}, {"epoch": 2, "rank1": 20.0}]
    FinalMetrics(tmp_path).on_fit_end(loop)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"epoch": 2, "rank1": 20.0}


def test_freeze_base_opens_only_the_named_layers_then_everything():
    nets = [nn.Sequential(), nn.Sequential()]
    for net in nets:
        net.add_module("body", nn.Linear(2, 2))
        net.add_module("classifier", nn.Linear(2, 2))
    freeze = FreezeBase(nets, epochs=1, open_layers=["classifier"])
    freeze.on_epoch_start(_loop(epoch=0))
    for net in nets:
        assert not net.body.weight.requires_grad and net.classifier.weight.requires_grad
        assert not net.body.training and net.classifier.training
    freeze.on_epoch_start(_loop(epoch=1))
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


def test_ramp_raises_a_weight_from_zero_over_its_epochs():
    class Weights:
        triplet_weight = 0.5

    target = Weights()
    ramp = Ramp(target, "triplet_weight", 0.5, epochs=4)
    seen = []
    for epoch in range(6):
        loop = _loop(epoch=epoch)
        ramp.on_epoch_start(loop)
        seen.append(target.triplet_weight)
        ramp.on_epoch_end(loop)
        assert loop.record["triplet_weight"] == seen[-1]
    assert seen == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]


def test_ramp_can_wait_before_it_starts_and_step_when_it_has_no_length():
    class Weights:
        triplet_weight = 0.5

    waits = Ramp(Weights(), "triplet_weight", 0.5, epochs=2, start=3)
    assert [waits.value(e) for e in range(7)] == [0.0, 0.0, 0.0, 0.0, 0.25, 0.5, 0.5]
    steps = Ramp(Weights(), "triplet_weight", 0.5, epochs=0, start=2)
    assert [steps.value(e) for e in range(4)] == [0.0, 0.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="one of them > 0"):
        Ramp(Weights(), "triplet_weight", 0.5, epochs=0, start=0)


def test_time_budget_follows_the_clock_and_ends_when_the_next_epoch_would_not_fit(monkeypatch):
    import omnireid.engine.callbacks as callbacks

    clock = {"now": 1000.0}
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock["now"])
    model = nn.Linear(2, 2)
    loop = _loop(model, max_epoch=100)
    budget = TimeBudget(loop.optimizer, seconds=100.0, reserve=10.0)  # lr 0.1 at t = 0
    budget.on_fit_start(loop)
    lrs, ends = [], []
    for epoch in range(100):
        if epoch >= loop.max_epoch:
            break
        loop.epoch, loop.record = epoch, {"epoch": epoch + 1}
        budget.on_epoch_start(loop)
        lrs.append(loop.optimizer.param_groups[0]["lr"])
        clock["now"] += 20.0  # every epoch takes 20 s
        budget.on_epoch_end(loop)
        ends.append(loop.max_epoch)
    # t = 0, 20, 40, 60 of the 90 s schedule: (1 + cos(pi t / 90)) / 2 x 0.1
    expected = [0.1 * (1 + math.cos(math.pi * t / 90)) / 2 for t in (0, 20, 40, 60)]
    assert lrs == pytest.approx(expected)
    # after epoch 4, t = 80: another 20 s epoch + 10 s reserve would pass 100 s: it ends there
    assert ends == [100, 100, 100, 4] and loop.record["budget_used"] == pytest.approx(0.8)


def test_a_cpu_time_budget_counts_the_process_time_not_the_wall_clock(monkeypatch):
    import omnireid.engine.callbacks as callbacks

    wall, cpu = {"now": 0.0}, {"now": 0.0}
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: wall["now"])
    monkeypatch.setattr(callbacks.time, "process_time", lambda: cpu["now"])
    loop = _loop(nn.Linear(2, 2), max_epoch=100)
    budget = TimeBudget(loop.optimizer, seconds=100.0, clock="cpu")
    budget.on_fit_start(loop)
    for epoch in range(3):
        loop.epoch, loop.record = epoch, {"epoch": epoch + 1}
        budget.on_epoch_start(loop)
        wall["now"] += 60.0  # a busy machine: 60 s pass, 10 s of them this process's
        cpu["now"] += 10.0
        budget.on_epoch_end(loop)
    assert loop.max_epoch == 100 and loop.record["budget_used"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="clock"):
        TimeBudget(loop.optimizer, seconds=100.0, clock="gpu")


def test_a_resumed_time_budget_carries_on_from_what_the_saved_epochs_spent(monkeypatch, tmp_path):
    import omnireid.engine.callbacks as callbacks

    clock = {"now": 5000.0}
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock["now"])
    log = tmp_path / "log.jsonl"
    # two saved epochs of 20 s each in a 100 s budget; a third was interrupted before its save
    log.write_text(
        "".join(json.dumps({"epoch": e, "budget_used": 0.2 * e}) + "\n" for e in (1, 2, 3))
    )
    loop = Loop(nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), 100)
    loop.start_epoch = 2
    budget = TimeBudget(loop.optimizer, seconds=100.0, log=log)
    budget.on_fit_start(loop)
    loop.epoch, loop.record = 2, {"epoch": 3}
    budget.on_epoch_start(loop)  # 40 s of 100 spent: lr (1 + cos(0.4 pi)) / 2 x 0.1
    assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(
        0.05 * (1 + math.cos(0.4 * math.pi))
    )
    clock["now"] += 20.0
    budget.on_epoch_end(loop)
    assert loop.record["budget_used"] == pytest.approx(0.6) and loop.max_epoch == 100
    clock["now"] += 20.0  # epoch 4 ends at 80 s: a fifth 20 s epoch would still fit exactly
    loop.epoch, loop.record = 3, {"epoch": 4}
    budget.on_epoch_end(loop)
    clock["now"] += 20.0
    loop.epoch, loop.record = 4, {"epoch": 5}
    budget.on_epoch_end(loop)  # 100 s: no sixth
    assert loop.record["budget_used"] == pytest.approx(1.0) and loop.max_epoch == 5


def test_a_finished_time_budget_run_trains_nothing_more_when_run_again(tmp_path):
    log = tmp_path / "log.jsonl"
    # 4 saved epochs of 22 s in a 100 s budget: the run ended there (a fifth would reach 110 s)
    log.write_text(
        "".join(json.dumps({"epoch": e, "budget_used": 0.22 * e}) + "\n" for e in (1, 2, 3, 4))
    )
    finished = _loop(nn.Linear(2, 2), max_epoch=1000)
    finished.start_epoch = 4
    TimeBudget(finished.optimizer, seconds=100.0, log=log).on_fit_start(finished)
    assert finished.max_epoch == 4
    # saved after epoch 3 (66 s): a fourth epoch fits, so the interrupted run goes on
    interrupted = _loop(nn.Linear(2, 2), max_epoch=1000)
    interrupted.start_epoch = 3
    TimeBudget(interrupted.optimizer, seconds=100.0, log=log).on_fit_start(interrupted)
    assert interrupted.max_epoch == 1000


def test_a_resumed_time_budget_without_its_record_is_refused(tmp_path):
    from omnireid.errors import UsageError

    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"epoch": 1, "loss": 1.0}) + "\n")
    loop = _loop(nn.Linear(2, 2))
    loop.start_epoch = 1
    with pytest.raises(UsageError, match="budget_used for epoch 1"):
        TimeBudget(loop.optimizer, seconds=100.0, log=log).on_fit_start(loop)
    fresh = _loop(nn.Linear(2, 2))  # a new run (start_epoch 0) needs no record
    TimeBudget(fresh.optimizer, seconds=100.0, log=log).on_fit_start(fresh)
