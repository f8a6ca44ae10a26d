"""Ramp, learning-rate schedule and time budget: values by epoch and by clock, by hand."""

import json
import math

import pytest
import torch
from torch import nn

from omnireid.engine.loop import Loop
from omnireid.engine.schedules import Ramp, TimeBudget
from tests.engine.helpers import bare_loop


def test_ramp_raises_a_weight_from_zero_over_its_epochs():
    class Weights:
        triplet_weight = 0.5

    target = Weights()
    ramp = Ramp(target, "triplet_weight", 0.5, epochs=4)
    seen = []
    for epoch in range(6):
        loop = bare_loop(epoch=epoch)
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
    import omnireid.engine.schedules as schedules

    clock = {"now": 1000.0}
    monkeypatch.setattr(schedules.time, "perf_counter", lambda: clock["now"])
    model = nn.Linear(2, 2)
    loop = bare_loop(model, max_epoch=100)
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
    import omnireid.engine.schedules as schedules

    wall, cpu = {"now": 0.0}, {"now": 0.0}
    monkeypatch.setattr(schedules.time, "perf_counter", lambda: wall["now"])
    monkeypatch.setattr(schedules.time, "process_time", lambda: cpu["now"])
    loop = bare_loop(nn.Linear(2, 2), max_epoch=100)
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
    import omnireid.engine.schedules as schedules

    clock = {"now": 5000.0}
    monkeypatch.setattr(schedules.time, "perf_counter", lambda: clock["now"])
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
    finished = bare_loop(nn.Linear(2, 2), max_epoch=1000)
    finished.start_epoch = 4
    TimeBudget(finished.optimizer, seconds=100.0, log=log).on_fit_start(finished)
    assert finished.max_epoch == 4
    # saved after epoch 3 (66 s): a fourth epoch fits, so the interrupted run goes on
    interrupted = bare_loop(nn.Linear(2, 2), max_epoch=1000)
    interrupted.start_epoch = 3
    TimeBudget(interrupted.optimizer, seconds=100.0, log=log).on_fit_start(interrupted)
    assert interrupted.max_epoch == 1000


def test_a_resumed_time_budget_without_its_record_is_refused(tmp_path):
    from omnireid.errors import UsageError

    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"epoch": 1, "loss": 1.0}) + "\n")
    loop = bare_loop(nn.Linear(2, 2))
    loop.start_epoch = 1
    with pytest.raises(UsageError, match="budget_used for epoch 1"):
        TimeBudget(loop.optimizer, seconds=100.0, log=log).on_fit_start(loop)
    fresh = bare_loop(nn.Linear(2, 2))  # a new run (start_epoch 0) needs no record
    TimeBudget(fresh.optimizer, seconds=100.0, log=log).on_fit_start(fresh)
