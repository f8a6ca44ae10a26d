"""The standard callbacks of ``fit``: what a training run does around its steps.

The task layer builds the list; ``fit`` calls each hook in list order. Callbacks that write
files or evaluate act on the main process only (rank 0 under DDP); the others act on every
process so all replicas stay in step. A usual list, in order:

``SetEpoch`` (sampler/dataset epochs) -> ``FreezeBase`` (fine-tuning stage) -> ``LRSchedule``
-> ``Evaluator`` -> task callbacks (``Ramp``, ``CollapseDetector``, ...) -> ``EpochLog``
(log.jsonl + a line per epoch) -> ``TensorBoard`` -> ``Checkpointer`` -> ``FinalMetrics``
(metrics.json).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from omnireid.engine.checkpoint import save_checkpoint
from omnireid.engine.distributed import is_main_process, unwrap
from omnireid.engine.loop import Callback, Loop
from omnireid.engine.optim import open_all, open_layers
from omnireid.errors import NonFiniteLossError, TrainingError, UsageError

log = logging.getLogger("omnireid.train")

LOG_FILE = "log.jsonl"
METRICS_FILE = "metrics.json"


class HasSetEpoch(Protocol):
    def set_epoch(self, epoch: int) -> None: ...


class SetEpoch(Callback):
    """Tell samplers and datasets which epoch starts (their shuffles and per-epoch state)."""

    def __init__(self, *parts: HasSetEpoch) -> None:
        self.parts = parts

    def on_epoch_start(self, loop: Loop) -> None:
        for part in self.parts:
            part.set_epoch(loop.epoch)


class FreezeBase(Callback):
    """Staged fine-tuning: for the first ``epochs`` epochs only ``open_layers`` of each network
    train (the rest frozen, BatchNorm statistics fixed); then everything trains."""

    def __init__(self, networks: Sequence[nn.Module], epochs: int, open_layers: Sequence[str]):
        self.networks, self.epochs, self.open_layers = list(networks), epochs, list(open_layers)

    def on_epoch_start(self, loop: Loop) -> None:
        for network in self.networks:
            if loop.epoch < self.epochs:
                open_layers(network, self.open_layers)
            else:
                open_all(network)


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


class Evaluator(Callback):
    """Add ``evaluate(model)``'s metrics to the record every ``every`` epochs and after the last
    (``every=0``: after the last only). Main process only."""

    def __init__(self, evaluate: Callable[[nn.Module], dict[str, float]], every: int = 0):
        if every < 0:
            raise ValueError(f"evaluation interval must be >= 0, got {every}")
        self.evaluate, self.every = evaluate, every

    def due(self, loop: Loop) -> bool:
        done = loop.epoch + 1
        return done == loop.max_epoch or bool(self.every and done % self.every == 0)

    def on_epoch_end(self, loop: Loop) -> None:
        if not is_main_process() or not self.due(loop):
            return
        metrics = self.evaluate(unwrap(loop.model))
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLossError(f"epoch {loop.epoch + 1}: evaluation gave non-finite {bad}")
        loop.record.update(metrics)


class JsonlLog(Callback):
    """A JSON-lines file with one record per epoch, kept consistent with resuming: at the start
    the lines of epochs after the resume point (written by a run killed before it saved that
    epoch) are dropped. Main process only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_fit_start(self, loop: Loop) -> None:
        if is_main_process():
            truncate_jsonl(self.path, loop.start_epoch)

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class EpochLog(JsonlLog):
    """Append each record to ``out_dir/log.jsonl`` and log one line per epoch."""

    def __init__(self, out_dir: str | Path, shown: Sequence[str] = ()) -> None:
        super().__init__(Path(out_dir) / LOG_FILE)
        self.shown = tuple(shown)

    def on_epoch_end(self, loop: Loop) -> None:
        if not is_main_process():
            return
        self.append(loop.record)
        r = loop.record
        values = "  ".join(
            f"{k} {r[k]:.4g}" for k in ("loss", *self.shown) if isinstance(r.get(k), float)
        )
        log.info(
            "epoch %d/%d  %s  lr %.3g  %.0fs",
            r["epoch"],
            loop.max_epoch,
            values,
            r["lr"],
            r["seconds"],
        )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (blank lines skipped)."""
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def truncate_jsonl(path: Path, epoch: int) -> None:
    """Drop the lines of ``path`` whose ``epoch`` is after ``epoch`` (written by a run that was
    killed before it saved that epoch's checkpoint)."""
    if not path.is_file():
        return
    records = read_jsonl(path)
    kept = [r for r in records if r.get("epoch", 0) <= epoch]
    if len(kept) != len(records):
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))


class TensorBoard(Callback):
    """Also write every record's numbers for TensorBoard (``out_dir/tensorboard``)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.writer: Any = None

    def on_fit_start(self, loop: Loop) -> None:
        if not is_main_process():
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard is not installed: no TensorBoard logs")
            return
        self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    def on_epoch_end(self, loop: Loop) -> None:
        if self.writer is None:
            return
        for key, value in loop.record.items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(key, value, loop.record["epoch"])
        self.writer.flush()

    def on_fit_end(self, loop: Loop) -> None:
        if self.writer is not None:
            self.writer.close()


def _non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, state in enumerate(optimizer.state.values()):
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                out[f"optimizer.state[{i}].{k}"] = v
    return out


class Checkpointer(Callback):
    """Write a resumable checkpoint folder every epoch (``engine.checkpoint``). Main process
    only. Weights and optimiser state are checked first: a non-finite value stops training
    and the previous checkpoint stays the latest."""

    def __init__(
        self,
        out_dir: str | Path,
        *,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        scaler: torch.amp.GradScaler | None = None,
        meta: dict[str, Any] | None = None,
        keep: int | None = 3,
    ) -> None:
        self.out_dir, self.optimizer, self.scheduler = Path(out_dir), optimizer, scheduler
        self.scaler, self.meta, self.keep = scaler, meta or {}, keep

    def on_epoch_end(self, loop: Loop) -> None:
        if not is_main_process():
            return
        model = unwrap(loop.model)
        bad = _non_finite(dict(model.state_dict())) + _non_finite(
            _optimizer_tensors(self.optimizer)
        )
        if bad:
            raise NonFiniteLossError(
                f"epoch {loop.epoch + 1} left non-finite values in {len(bad)} tensor(s) "
                f"(e.g. {bad[:3]}); not saved: the previous checkpoint stays the latest"
            )
        save_checkpoint(
            self.out_dir,
            model,
            loop.epoch + 1,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            meta={**self.meta, "log": loop.record},
            keep=self.keep,
            scaler=self.scaler,
        )


class CollapseDetector(Callback):
    """Watch an embedding statistic and act when it says the features collapsed.

    ``key`` names a record entry (e.g. ``feat_dist``, the mean pairwise distance of a batch's
    embeddings relative to their mean norm); when it falls below ``threshold`` the detector
    logs a warning (``action="warn"``) or stops training with ``TrainingError``
    (``action="stop"``), naming the epoch and the value.
    """

    def __init__(self, key: str, threshold: float, action: str = "warn") -> None:
        if action not in ("warn", "stop"):
            raise ValueError(f"collapse action must be 'warn' or 'stop', got {action!r}")
        self.key, self.threshold, self.action = key, threshold, action

    def on_epoch_end(self, loop: Loop) -> None:
        value = loop.record.get(self.key)
        if value is None or value >= self.threshold:
            return
        loop.record["collapsed"] = 1.0
        message = (
            f"epoch {loop.epoch + 1}: the embedding has collapsed ({self.key} {value:.4g} < "
            f"{self.threshold:g}): features of different people are nearly identical"
        )
        if self.action == "stop":
            raise TrainingError(
                message + "; training stopped (try a triplet warm-up, loss.bnneck, or a lower lr)"
            )
        log.warning("%s", message)


class FinalMetrics(Callback):
    """Write the last record of the run (with its evaluation) to ``out_dir/metrics.json``."""

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / METRICS_FILE

    def on_fit_end(self, loop: Loop) -> None:
        if loop.records and is_main_process():
            self.path.write_text(json.dumps(loop.records[-1], indent=2))
