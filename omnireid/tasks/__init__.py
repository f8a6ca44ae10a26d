"""The task layer: one way from a validated ``Config`` to a finished training run.

``fit_from_config(config)`` picks the task (``train.task``: ``reid``, ``attributes``, ``nas``,
``classify`` or ``adapt``), which builds the run's parts (model, loader, loss, statistics,
evaluator, checkpoint metadata; ``tasks.common.Run``). It then adds what every task shares: the
optimiser and lr schedule, mixed precision, DDP, resume from the newest intact checkpoint,
and the standard callbacks (``engine.callbacks``), and calls ``engine.loop.fit``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch

from omnireid.config import Config, config_to_dict
from omnireid.deploy.auto import has_units
from omnireid.deploy.peak import cpu_flags
from omnireid.engine.callbacks import (
    Checkpointer,
    EpochLog,
    Evaluator,
    FinalMetrics,
    FreezeBase,
    SetEpoch,
    TensorBoard,
)
from omnireid.engine.checkpoint import restore_latest
from omnireid.engine.distributed import init_distributed, rank, unwrap, wrap
from omnireid.engine.files import disk_error, write_atomic
from omnireid.engine.lock import RunLock
from omnireid.engine.loop import AmpMode, Callback, check_amp, fit, training_layout
from omnireid.engine.optim import build_optimizer, check_layer_names
from omnireid.engine.schedules import LRSchedule, TimeBudget
from omnireid.errors import ConfigError
from omnireid.evaluation.metrics import RANK_KEYS
from omnireid.rundir import RunDir
from omnireid.tasks.adapt import adapt_run
from omnireid.tasks.attributes import attributes_run
from omnireid.tasks.classify import classify_run
from omnireid.tasks.common import Run, scheduler, seed_everything
from omnireid.tasks.nas import nas_run
from omnireid.tasks.reid import reid_run
from omnireid.tasks.resume import check_resume, record_extension

log = logging.getLogger("omnireid.train")

# train.task -> the function that builds its Run. Add a task by adding a line here.
TASKS: dict[str, Callable[[Config], Run]] = {
    "reid": reid_run,
    "attributes": attributes_run,
    "nas": nas_run,
    "classify": classify_run,
    "adapt": adapt_run,
}


def check_device(device: str) -> None:
    """``train.device`` must exist on this machine (its form is checked by the config)."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device {device}: this machine has no usable CUDA GPU")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device {device}: this machine has {torch.cuda.device_count()} GPU(s), "
                f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )


def resolve_amp(amp: str, device: str, flags: frozenset[str] | None = None) -> str:
    """``train.amp`` as the run uses it: "auto" becomes "bf16" where the device has bf16
    units (a CPU whose ``flags``, default ``/proc/cpuinfo``'s, include AVX512_BF16 or
    AMX-BF16; a CUDA GPU that supports bf16), else "none"; any other value is kept."""
    if amp != "auto":
        return amp
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "none"
    return "bf16" if has_units("bf16", cpu_flags() if flags is None else flags) else "none"


def build_run(config: Config) -> Run:
    """The task's parts of a run (nothing is written yet). Each setting's own range was
    checked when the config was made (``omnireid.config``); here, how settings combine."""
    check_amp(resolve_amp(config.train.amp, config.train.device), config.train.device)
    t = config.train
    if t.budget_minutes > 0:
        if config.optim.schedule != "cosine":
            raise ConfigError("train.budget_minutes needs optim.schedule=cosine (over time)")
        if t.budget_minutes <= t.budget_reserve_minutes:
            raise ConfigError(
                f"train.budget_minutes ({t.budget_minutes}) must exceed "
                f"train.budget_reserve_minutes ({t.budget_reserve_minutes})"
            )
    return TASKS[config.train.task](config)


def fit_from_config(config: Config) -> list[dict[str, Any]]:
    """Train as ``config`` says; returns the records of the epochs run (the last has the
    evaluation). Running it again on the same ``train.out_dir`` resumes where it stopped (with
    the same training config: ``tasks.resume``). One process at a time trains a run folder."""
    check_device(config.train.device)
    init_distributed(config.train.device)
    lock = RunLock(config.train.out_dir)
    if rank() == 0:
        lock.acquire()
    try:
        return _fit(config)
    finally:
        lock.release()


def _fit(config: Config) -> list[dict[str, Any]]:
    extension = check_resume(config)
    seed_everything(config.train.seed)
    run = build_run(config)
    t, o = config.train, config.optim
    out_dir = Path(t.out_dir)
    model = run.model.to(t.device)
    channels_last = training_layout(model, t.channels_last) == torch.channels_last
    model = wrap(model, t.device, find_unused_parameters=o.fixbase_epochs > 0)
    optimizer = _optimizer(config, model, run)
    lr_schedule = scheduler(config, optimizer)
    amp = resolve_amp(t.amp, t.device)
    if t.amp == "auto" and rank() == 0:
        log.info(
            "train.amp=auto: %s on %s", amp if amp != "none" else "fp32 (no bf16 units)", t.device
        )
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    start = 0
    if t.resume:
        start = restore_latest(
            out_dir, unwrap(model), optimizer=optimizer, scheduler=lr_schedule, scaler=scaler
        )
        if start:
            log.info("resuming %s after epoch %d of %d", out_dir, start, o.max_epoch)
        if extension:  # the schedule of the new length, from the epoch reached
            lr_schedule.last_epoch = start - 1
            lr_schedule.step()
    callbacks = _callbacks(config, run, model, optimizer, lr_schedule, scaler)
    if rank() == 0:  # everything is checked: the run starts
        folder = RunDir(out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(folder.config, json.dumps(config_to_dict(config), indent=2))
        except OSError as e:
            raise disk_error(e, folder.CONFIG, out_dir, "the checkpoints are") from e
        if extension:
            record_extension(out_dir, start, extension)
    return fit(
        model,
        run.loader,
        optimizer,
        run.loss_fn,
        epochs=o.max_epoch,
        start_epoch=start,
        callbacks=callbacks,
        device=t.device,
        max_grad_norm=o.max_grad_norm,
        amp=cast(AmpMode, amp),  # resolved from "auto"; fit checks it (check_amp)
        scaler=scaler,
        monitor=run.monitor,
        channels_last=channels_last,
        show_progress=rank() == 0,
    )


def _optimizer(config: Config, model: torch.nn.Module, run: Run) -> torch.optim.Optimizer:
    o = config.optim
    try:
        optimizer = build_optimizer(
            run.parameters if run.parameters is not None else model.parameters(),
            o.name,
            o.lr,
            weight_decay=o.weight_decay,
            momentum=o.momentum,
        )
    except ValueError as e:
        raise ConfigError(f"optim: {e}") from e
    for group in run.extra_groups:
        optimizer.add_param_group(group)
    return optimizer


def _callbacks(
    config: Config,
    run: Run,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_schedule: Any,
    scaler: torch.amp.GradScaler | None,
) -> list[Callback]:
    """The standard callbacks around the task's own, in the order of ``engine.callbacks``."""
    t, o = config.train, config.optim
    out_dir = Path(t.out_dir)
    callbacks: list[Callback] = [SetEpoch(*run.epoch_parts)]
    if o.fixbase_epochs:
        networks = run.networks or [unwrap(model)]
        for network in networks:
            try:
                check_layer_names(network, o.open_layers)
            except ValueError as e:
                raise ConfigError(f"optim.open_layers: {e}") from e
        callbacks.append(FreezeBase(networks, o.fixbase_epochs, o.open_layers))
    if t.budget_minutes > 0:
        budget = 60 * t.budget_minutes
        reserve = 60 * t.budget_reserve_minutes
        callbacks.append(
            TimeBudget(
                optimizer,
                budget,
                warmup_epochs=o.warmup_epochs,
                reserve=reserve,
                clock=t.budget_clock,
                log=RunDir(out_dir).log,
            )
        )
    else:
        callbacks.append(LRSchedule(lr_schedule))
    if run.evaluate is not None:
        callbacks.append(Evaluator(run.evaluate, t.eval_every))
    callbacks += run.callbacks
    callbacks.append(EpochLog(out_dir, shown=(*run.shown, "rank1", "mAP")))
    if t.tensorboard:
        callbacks.append(TensorBoard(out_dir))
    checkpointer = Checkpointer(
        out_dir,
        optimizer=optimizer,
        scheduler=lr_schedule,
        scaler=scaler,
        spec=run.spec,
        keep=t.keep,
    )
    return [*callbacks, checkpointer, FinalMetrics(out_dir)]


def fit_all_splits(config: Config) -> dict[str, Any]:
    """The small-benchmark protocol (VIPeR, GRID, CUHK01): one model per random split, each
    trained and tested on its own split (``train.out_dir/splitK``), metrics averaged over the
    splits; written to ``train.out_dir/splits.json`` and returned. Re-running resumes."""
    from omnireid.data.datasets import MULTI_SPLIT
    from omnireid.tasks.reid import split_dataset_of

    name = split_dataset_of(config)
    if name is None:
        raise ConfigError(f"--all-splits needs a multi-split dataset ({sorted(MULTI_SPLIT)})")
    out = RunDir(Path(config.train.out_dir))
    per_split = []
    for k in range(MULTI_SPLIT[name]):
        split_config = replace(
            config,
            data=replace(config.data, split_id=k),
            train=replace(config.train, out_dir=str(out.split(k).path)),
        )
        log.info(
            "%s split %d of %d -> %s", name, k + 1, MULTI_SPLIT[name], split_config.train.out_dir
        )
        records = fit_from_config(split_config)
        final = records[-1] if records else _stored_metrics(Path(split_config.train.out_dir))
        per_split.append({k: v for k, v in final.items() if k in RANK_KEYS})
    keys = [k for k in RANK_KEYS if all(k in m for m in per_split)]
    summary = {
        "dataset": name,
        "splits": per_split,
        "mean": {k: sum(m[k] for m in per_split) / len(per_split) for k in keys},
    }
    if rank() == 0:
        out.path.mkdir(parents=True, exist_ok=True)
        write_atomic(out.splits, json.dumps(summary, indent=2))
    return summary


def _stored_metrics(run: Path) -> dict[str, Any]:
    path = RunDir(run).metrics
    if not path.is_file():
        raise ConfigError(f"{run} finished without {path.name}; remove it and run again")
    return json.loads(path.read_text())


__all__ = ["TASKS", "Run", "build_run", "fit_all_splits", "fit_from_config"]
