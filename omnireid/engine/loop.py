"""The training step and a small epoch loop; everything else hangs off it as callbacks.

``train_step`` runs one batch: forward, named loss terms, their sum, backward, optimiser step.
``fit`` runs epochs of steps and calls its callbacks at fixed points (``Callback``): at the
start (resume), at each epoch's start (schedules, frozen layers, sampler epochs), after each
step, and at each epoch's end (lr schedule, evaluation, logs, checkpoints), in the order their
``order`` gives (``CallbackOrder``). The loop itself knows nothing of files, metrics or
schedules; ``engine.callbacks`` has the standard ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import torch
from torch import nn

from omnireid.engine.distributed import barrier
from omnireid.errors import NonFiniteLossError, UsageError
from omnireid.progress import progress

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
# Detached statistics of a batch's (logits, features, targets), logged but not optimised
Monitor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, float]]
AmpMode = Literal["none", "bf16", "fp16"]
AMP_DTYPES: dict[str, torch.dtype | None] = {
    "none": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

__all__ = [
    "AMP_DTYPES",
    "Callback",
    "CallbackOrder",
    "Loop",
    "NonFiniteLossError",
    "fit",
    "train_step",
]


def training_layout(model: nn.Module, channels_last: bool) -> torch.memory_format:
    """Put ``model``'s weights in the training memory layout; returns the layout for its inputs.

    channels_last is the same model and update in a layout oneDNN's CPU convolutions run ~1.4x
    faster (``benchmarks/train_speed.py``). Call it before DDP wraps the model (its gradient
    buckets keep the layout) and before the optimiser is built.
    """
    if not channels_last:
        return torch.contiguous_format
    model.to(memory_format=torch.channels_last)
    return torch.channels_last


def check_amp(amp: str, device: str | torch.device) -> None:
    if amp not in AMP_DTYPES:
        raise UsageError(f"train.amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    if amp == "fp16" and torch.device(device).type != "cuda":
        raise UsageError("train.amp=fp16 needs a CUDA device; use bf16 on CPU")


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    max_grad_norm: float | None = None,
    amp: AmpMode = "none",
    scaler: torch.amp.GradScaler | None = None,
    monitor: Monitor | None = None,
) -> dict[str, float]:
    """One optimisation step on ``(N, 3, H, W)`` images with ``(N,)`` pids (or, for attribute
    recognition, ``(N, A)`` 0/1 targets).

    ``amp`` runs the forward pass and losses under autocast (``bf16``, or ``fp16`` on GPU with
    a ``scaler``). Returns every loss term, their sum ``loss``, and the statistics ``monitor``
    computes from the detached ``(logits, features, targets)`` (e.g. the batch accuracy).
    """
    dtype = AMP_DTYPES[amp]
    with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
        logits, features = model(images, return_features=True)
        terms = loss_fn(logits, features, targets)
    total = torch.stack([t.float() for t in terms.values()]).sum()
    if not torch.isfinite(total):
        values = {k: v.item() for k, v in terms.items()}
        raise NonFiniteLossError(f"non-finite loss {total.item()} (terms {values})")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
    else:
        total.backward()
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    stats = {k: v.item() for k, v in terms.items()}
    stats["loss"] = total.item()
    if monitor is not None:
        with torch.no_grad():
            stats.update(monitor(logits.detach(), features.detach(), targets))
    return stats


@dataclass
class Loop:
    """The state callbacks see and may change.

    ``start_epoch`` (0-based) is where training begins (after a resume); ``epoch`` is the
    0-based epoch running; ``max_epoch`` where it ends (a callback may lower it, e.g. a time
    budget, and epoch-end callbacks see the new end at once); ``step`` counts the steps this
    ``fit`` has run (``on_step_end`` sees it after the increment); ``record`` is the epoch's
    log record, which epoch-end callbacks extend; ``stop`` ends training after the current
    epoch.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    max_epoch: int
    start_epoch: int = 0
    epoch: int = 0
    step: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    stop: bool = False


class CallbackOrder(IntEnum):
    """Where a callback's hooks run among the others' (lower first, every hook alike; ``fit``
    keeps the list order between callbacks of the same place). What each place relies on:"""

    EPOCH = 0  # SetEpoch: samplers and datasets know the epoch before anything reads them
    FREEZE = 10  # FreezeBase: which layers train this epoch
    SCHEDULE = 20  # LRSchedule, TimeBudget: the next epoch's lr and end
    EVALUATE = 30  # Evaluator: adds the test metrics to the epoch's record
    TASK = 40  # the task's own (Ramp, CollapseDetector, NAS, adaptation): see the metrics
    LOG = 50  # EpochLog, TensorBoard: write the finished record
    CHECKPOINT = 60  # Checkpointer: stores the record the logs hold
    FINAL = 70  # FinalMetrics: the last record, after everything else


class Callback:
    """Hooks ``fit`` calls on every process: override what you need.

    ``on_fit_start`` runs once before the first epoch (restore state here), ``on_epoch_start``
    before each epoch's first batch, ``on_step_end`` after every optimisation step (with its
    statistics: loss terms, ``loss``, the monitor's), ``on_epoch_end`` after the epoch's last
    (``loop.record`` holds the epoch's mean loss terms, lr, image count and time),
    ``on_fit_end`` once at the end. Callbacks run in ascending ``order``
    (``CallbackOrder``), ties in list order.
    """

    order: int = CallbackOrder.TASK

    def on_fit_start(self, loop: Loop) -> None:
        pass

    def on_epoch_start(self, loop: Loop) -> None:
        pass

    def on_step_end(self, loop: Loop, stats: dict[str, float]) -> None:
        pass

    def on_epoch_end(self, loop: Loop) -> None:
        pass

    def on_fit_end(self, loop: Loop) -> None:
        pass


def fit(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    epochs: int,
    start_epoch: int = 0,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device = "cpu",
    max_grad_norm: float | None = None,
    amp: AmpMode = "none",
    scaler: torch.amp.GradScaler | None = None,
    monitor: Monitor | None = None,
    channels_last: bool = False,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Train epochs ``start_epoch`` .. ``epochs - 1`` (0-based; a resumed run starts later, a
    callback may stop early); returns the records of the epochs run.

    Each batch is ``(images, targets, ...)``; ``channels_last`` feeds the images in that memory
    layout (convert the model first with :func:`training_layout`). A record holds ``epoch``
    (1-based), ``lr`` (first parameter group, at the epoch's start), ``images``, ``seconds``
    and the batch-size-weighted mean of every statistic ``train_step`` returned. Callbacks run
    sorted by ``order`` (stable: ties in the order given).
    """
    check_amp(amp, device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    loop = Loop(model, optimizer, epochs, start_epoch=start_epoch)
    callbacks = sorted(callbacks, key=lambda cb: cb.order)
    # only those that override the step hook are called per step
    per_step = [cb for cb in callbacks if type(cb).on_step_end is not Callback.on_step_end]
    for cb in callbacks:
        cb.on_fit_start(loop)
    epoch = loop.start_epoch
    while epoch < loop.max_epoch:  # a callback may shorten the run (a time budget)
        loop.epoch = epoch
        model.train()
        for cb in callbacks:
            cb.on_epoch_start(loop)
        sums: dict[str, float] = {}
        count, started = 0, time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        bar = progress(
            loader, desc=f"epoch {epoch + 1}/{epochs}", enabled=show_progress, unit="batch"
        )
        for batch in bar:
            images, targets = batch[0].to(device, memory_format=layout), batch[1].to(device)
            stats = train_step(
                model,
                images,
                targets,
                optimizer,
                loss_fn,
                max_grad_norm=max_grad_norm,
                amp=amp,
                scaler=scaler,
                monitor=monitor,
            )
            n = len(targets)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * n
            count += n
            loop.step += 1
            for cb in per_step:
                cb.on_step_end(loop, stats)
            bar.set_postfix(loss=f"{stats['loss']:.3f}")
        loop.record = {
            "epoch": epoch + 1,
            "lr": lr,
            "images": count,
            "seconds": time.perf_counter() - started,
        }
        loop.record.update({k: v / max(count, 1) for k, v in sums.items()})
        bad = {
            k: v for k, v in loop.record.items() if isinstance(v, float) and not math.isfinite(v)
        }
        if bad:
            raise NonFiniteLossError(f"epoch {epoch + 1} produced non-finite statistics {bad}")
        for cb in callbacks:
            cb.on_epoch_end(loop)
        barrier()
        loop.records.append(loop.record)
        epoch += 1
        if loop.stop:
            break
    for cb in callbacks:
        cb.on_fit_end(loop)
    return loop.records
