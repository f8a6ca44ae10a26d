"""The standard callbacks of ``fit``: what a training run does around its steps.

The task layer builds the list; ``fit`` calls each hook in the order of the callbacks'
``order`` (``engine.loop.CallbackOrder``; ties in list order). Callbacks that write files or
evaluate act on the main process only (rank 0 under DDP); the others act on every process so
all replicas stay in step. A usual list, in order:

``SetEpoch`` (sampler/dataset epochs) -> ``FreezeBase`` (fine-tuning stage) -> ``LRSchedule``
or ``TimeBudget`` (``engine.schedules``) -> ``Evaluator`` -> task callbacks (``Ramp``,
``CollapseDetector``, ...) -> ``EpochLog``
(log.jsonl + a line per epoch) -> ``TensorBoard`` -> ``Checkpointer`` -> ``FinalMetrics``
(metrics.json).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from omnireid.engine.checkpoint import save_checkpoint
from omnireid.engine.distributed import is_main_process, unwrap
from omnireid.engine.files import disk_error, write_atomic
from omnireid.engine.loop import Callback, CallbackOrder, Loop
from omnireid.engine.optim import open_all, open_layers
from omnireid.errors import NonFiniteLossError, TrainingError
from omnireid.models.spec import ModelSpec
from omnireid.rundir import RunDir

log = logging.getLogger("omnireid.train")


class HasSetEpoch(Protocol):
    def set_epoch(self, epoch: int) -> None: ...


class SetEpoch(Callback):
    """Tell samplers and datasets which epoch starts (their shuffles and per-epoch state)."""

    order = CallbackOrder.EPOCH

    def __init__(self, *parts: HasSetEpoch) -> None:
        self.parts = parts

    def on_epoch_start(self, loop: Loop) -> None:
        for part in self.parts:
            part.set_epoch(loop.epoch)


class FreezeBase(Callback):
    """Staged fine-tuning: for the first ``epochs`` epochs only ``open_layers`` of each network
    train (the rest frozen, BatchNorm statistics fixed); then everything trains."""

    order = CallbackOrder.FREEZE

    def __init__(self, networks: Sequence[nn.Module], epochs: int, open_layers: Sequence[str]):
        self.networks, self.epochs, self.open_layers = list(networks), epochs, list(open_layers)

    def on_epoch_start(self, loop: Loop) -> None:
        for network in self.networks:
            if loop.epoch < self.epochs:
                open_layers(network, self.open_layers)
            else:
                open_all(network)


class Evaluator(Callback):
    """Add ``evaluate(model)``'s metrics to the record every ``every`` epochs and after the last
    (``every=0``: after the last only). Main process only."""

    order = CallbackOrder.EVALUATE

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
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise disk_error(e, self.path.name, self.path.parent, "the checkpoints are") from e


class EpochLog(JsonlLog):
    """Append each record to ``out_dir/log.jsonl`` and log one line per epoch."""

    order = CallbackOrder.LOG

    def __init__(self, out_dir: str | Path, shown: Sequence[str] = ()) -> None:
        super().__init__(RunDir(Path(out_dir)).log)
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
    """The records of a JSON-lines file. Blank lines are skipped, and so is a line that is not
    a JSON object (the last line of a run killed while appending it: cut short, or garbage)."""
    return _parse_jsonl(path)[0]


def _parse_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """``(records, number of lines that are not a JSON object)``."""
    records, bad = [], 0
    for line in Path(path).read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def truncate_jsonl(path: Path, epoch: int) -> None:
    """Drop the lines of ``path`` whose ``epoch`` is after ``epoch`` (written by a run that was
    killed before it saved that epoch's checkpoint), and lines that are not records (one cut
    short by the kill), with a warning; the file is replaced atomically."""
    if not path.is_file():
        return
    records, bad = _parse_jsonl(path)
    kept = [r for r in records if not isinstance(r.get("epoch"), int) or r["epoch"] <= epoch]
    if bad:
        log.warning("%s: dropped %d damaged line(s) (a run killed while writing it)", path, bad)
    if bad or len(kept) != len(records):
        try:
            write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
        except OSError as e:
            raise disk_error(e, path.name, path.parent, "the checkpoints are") from e


class TensorBoard(Callback):
    """Also write every record's numbers for TensorBoard (``out_dir/tensorboard``)."""

    order = CallbackOrder.LOG

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
        self.writer = SummaryWriter(str(RunDir(self.out_dir).tensorboard))

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
    """Write a resumable checkpoint folder every epoch (``engine.checkpoint``), with ``spec``
    (the run's ``ModelSpec``) and the epoch's record in it. Main process only. Weights and
    optimiser state are checked first: a non-finite value stops training and the previous
    checkpoint stays the latest."""

    order = CallbackOrder.CHECKPOINT

    def __init__(
        self,
        out_dir: str | Path,
        *,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        scaler: torch.amp.GradScaler | None = None,
        spec: ModelSpec | None = None,
        keep: int | None = 3,
    ) -> None:
        self.out_dir, self.optimizer, self.scheduler = Path(out_dir), optimizer, scheduler
        self.scaler, self.spec, self.keep = scaler, spec, keep

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
            spec=None if self.spec is None else replace(self.spec, record=dict(loop.record)),
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
                message + "; training stopped (try a triplet warm-up, model.bnneck, or a lower lr)"
            )
        log.warning("%s", message)


class FinalMetrics(Callback):
    """Write the last record of the run (with its evaluation) to ``out_dir/metrics.json``."""

    order = CallbackOrder.FINAL

    def __init__(self, out_dir: str | Path) -> None:
        self.path = RunDir(Path(out_dir)).metrics

    def on_fit_end(self, loop: Loop) -> None:
        if loop.records and is_main_process():
            try:
                write_atomic(self.path, json.dumps(loop.records[-1], indent=2))
            except OSError as e:
                raise disk_error(e, self.path.name, self.path.parent, "the checkpoints are") from e
