"""Callbacks that set a value by the epoch or by the clock: a weight ramp, the per-epoch
learning-rate schedule and the time budget (a cosine schedule over elapsed or CPU time that
ends the run when the next epoch would not fit)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from omnireid.engine.callbacks import read_jsonl
from omnireid.engine.loop import Callback, CallbackOrder, Loop
from omnireid.errors import UsageError


class Ramp(Callback):
    """Hold ``target.attribute`` at 0 for the first ``start`` epochs, then ramp it linearly to
    ``final`` over ``epochs`` epochs (epoch e, 0-based, runs with
    ``final * clamp((e - start) / epochs, 0, 1)``; ``epochs=0``: a step at ``start``) and
    record it."""

    def __init__(
        self, target: Any, attribute: str, final: float, epochs: int, start: int = 0
    ) -> None:
        if epochs < 0 or start < 0 or epochs + start < 1:
            raise ValueError(
                f"a ramp needs epochs >= 0, start >= 0 and one of them > 0, got {epochs}, {start}"
            )
        self.target, self.attribute, self.final = target, attribute, final
        self.epochs, self.start = epochs, start

    def value(self, epoch: int) -> float:
        if epoch < self.start:
            return 0.0
        if self.epochs == 0:
            return self.final
        return self.final * min(1.0, (epoch - self.start) / self.epochs)

    def on_epoch_start(self, loop: Loop) -> None:
        setattr(self.target, self.attribute, self.value(loop.epoch))

    def on_epoch_end(self, loop: Loop) -> None:
        loop.record[self.attribute] = self.value(loop.epoch)


class LRSchedule(Callback):
    """Step a per-epoch learning-rate schedule at every epoch's end."""

    order = CallbackOrder.SCHEDULE

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def on_epoch_end(self, loop: Loop) -> None:
        self.scheduler.step()


# TimeBudget's clocks: elapsed time, or the CPU time of this process (all its threads)
CLOCKS = {"wall": "perf_counter", "cpu": "process_time"}


class TimeBudget(Callback):
    """A cosine learning-rate schedule over wall-clock time instead of epochs, and an end when
    the budget is spent: train as many epochs as ``seconds`` allow, however fast or slow the
    machine turns out to be.

    Before each epoch the lr is ``base_lr * (1 + cos(pi * t / T)) / 2`` with ``t`` the time
    spent so far and ``T = seconds - reserve`` (times a linear warm-up from 1% over the first
    ``warmup_epochs``). After each epoch, if another epoch (the mean so far) would not fit, the
    run ends there: ``loop.max_epoch`` becomes this epoch, so the evaluation of the last epoch
    runs now; ``reserve`` seconds are kept for it. Put it before ``Evaluator``.

    Each epoch's record gets ``budget_used`` (the fraction spent by its end). Given the run's
    ``log`` (``log.jsonl``), a resumed run carries on from the budget its last saved epoch had
    spent instead of starting a fresh one; the time of an epoch that was interrupted before
    it was saved is not counted (its work was lost too), and a run whose budget had ended
    trains nothing more (its last epoch stays the last). ``clock="cpu"`` counts this process's
    CPU time instead of elapsed time: the same budget whatever else the machine runs.
    """

    order = CallbackOrder.SCHEDULE

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        seconds: float,
        *,
        warmup_epochs: int = 0,
        reserve: float = 0.0,
        clock: str = "wall",
        log: str | Path | None = None,
    ) -> None:
        if clock not in CLOCKS:
            raise ValueError(f"budget clock must be one of {sorted(CLOCKS)}, got {clock!r}")
        self.clock = clock
        if seconds <= reserve:
            raise ValueError(f"a time budget of {seconds} s leaves nothing after {reserve} s")
        self.optimizer, self.seconds, self.reserve = optimizer, seconds, reserve
        self.warmup_epochs = warmup_epochs
        self.base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.started = 0.0
        self.epochs_run = 0
        self.log = None if log is None else Path(log)

    def now(self) -> float:
        return getattr(time, CLOCKS[self.clock])()

    def elapsed(self) -> float:
        return self.now() - self.started

    def on_fit_start(self, loop: Loop) -> None:
        spent = self.spent_before(loop.start_epoch)
        self.started = self.now() - spent
        self.epochs_run = loop.start_epoch if spent else 0
        if spent and self._over(spent, spent / loop.start_epoch):  # the run had ended there
            loop.max_epoch = loop.start_epoch

    def _over(self, elapsed: float, per_epoch: float) -> bool:
        """Another epoch of ``per_epoch`` seconds would not fit after ``elapsed``."""
        return elapsed + per_epoch + self.reserve > self.seconds

    def spent_before(self, start_epoch: int) -> float:
        """Seconds of the budget the saved epochs ``1 .. start_epoch`` spent (0 for a new
        run). A resumed run whose log lacks that epoch's ``budget_used`` is refused: it would
        otherwise silently get a second budget."""
        if start_epoch == 0 or self.log is None:
            return 0.0
        records = read_jsonl(self.log) if self.log.is_file() else []
        used = [r.get("budget_used") for r in records if r.get("epoch") == start_epoch]
        if not used or not isinstance(used[-1], int | float):
            raise UsageError(
                f"{self.log}: no budget_used for epoch {start_epoch}; cannot resume the time "
                "budget of this run (start it in a new out_dir)"
            )
        return float(used[-1]) * self.seconds

    def on_epoch_start(self, loop: Loop) -> None:
        progress = min(1.0, self.elapsed() / (self.seconds - self.reserve))
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        if loop.epoch < self.warmup_epochs:
            factor *= 0.01 + 0.99 * loop.epoch / self.warmup_epochs
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def on_epoch_end(self, loop: Loop) -> None:
        self.epochs_run += 1
        per_epoch = self.elapsed() / self.epochs_run
        loop.record["budget_used"] = self.elapsed() / self.seconds
        if self._over(self.elapsed(), per_epoch):
            loop.max_epoch = loop.epoch + 1
