"""The training step and the epoch loop; checkpointing, evaluation and logging hang off the loop.

``train_step`` runs one batch: forward, named loss terms, their sum, backward, optimiser step.
``fit`` runs epochs of steps, steps the schedule per epoch, keeps the base frozen for the
first ``fixbase_epochs`` (only ``open_layers`` train), writes a resumable checkpoint and a JSONL
log line every epoch, and resumes exactly from the latest checkpoint in ``out_dir``.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from omnireid.engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from omnireid.engine.distributed import barrier, is_main_process, unwrap
from omnireid.engine.optim import open_all, open_layers

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
AmpMode = Literal["none", "bf16", "fp16"]
AMP_DTYPES: dict[str, torch.dtype | None] = {
    "none": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


class NonFiniteLossError(RuntimeError):
    """A NaN or infinite loss: training stops; the last good checkpoint is kept."""


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


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    pids: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    max_grad_norm: float | None = None,
    amp: AmpMode = "none",
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One optimisation step on ``(N, 3, H, W)`` images with ``(N,)`` pids (or, for attribute
    recognition, ``(N, A)`` 0/1 targets shaped like the logits).

    ``amp`` runs the forward pass and losses under autocast (``bf16``, or ``fp16`` on GPU with
    a ``scaler``). Returns every loss term, their sum ``loss`` and the batch accuracy ``acc``.
    """
    dtype = AMP_DTYPES[amp]
    with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
        logits, features = model(images, return_features=True)
        terms = loss_fn(logits, features, pids)
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
    if pids.shape == logits.shape:  # (N, A) multi-label targets: label accuracy at p = 0.5
        acc = ((logits > 0) == (pids > 0.5)).float().mean()
    else:  # (N, C), or (2, N, C) for a MutualPair
        acc = (logits.argmax(-1) == pids).float().mean()
    values = {k: v.item() for k, v in terms.items()}
    return {**values, "loss": total.item(), "acc": acc.item()}


def fit(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss_fn: LossFn,
    *,
    max_epoch: int,
    out_dir: str | Path,
    fixbase_epochs: int = 0,
    open_layer_names: Sequence[str] = ("classifier",),
    resume: bool = True,
    device: str | torch.device = "cpu",
    max_grad_norm: float | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    meta: dict[str, Any] | None = None,
    keep: int | None = 3,
    progress: bool = True,
    amp: AmpMode = "none",
    tensorboard: bool = False,
    channels_last: bool = False,
) -> list[dict[str, float]]:
    """Train until ``max_epoch``; returns the per-epoch log records (also in ``log.jsonl``).

    With ``resume`` the latest checkpoint in ``out_dir`` is restored (weights, optimiser,
    schedule, RNG states) and training continues after its epoch. ``evaluate`` is called
    every ``eval_every`` epochs (and after the last) and its metrics join the log record.
    ``channels_last`` feeds the images in that memory layout (convert the model first with
    :func:`training_layout`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    if amp == "fp16" and torch.device(device).type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' on CPU")
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    layout = torch.channels_last if channels_last else torch.contiguous_format
    start = 0
    last = latest_checkpoint(out_dir) if resume else None
    if last is not None:
        start = load_checkpoint(
            last, unwrap(model), optimizer=optimizer, scheduler=scheduler, scaler=scaler
        ).epoch
    _truncate_log(out_dir / "log.jsonl", start)
    writer = _tensorboard_writer(out_dir) if tensorboard and is_main_process() else None
    records = []
    for epoch in range(start, max_epoch):
        for part in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
            if hasattr(part, "set_epoch"):  # sampler order; per-epoch augmentation state
                part.set_epoch(epoch)
        model.train()
        inner = unwrap(model)
        for network in inner.networks() if hasattr(inner, "networks") else (inner,):
            if epoch < fixbase_epochs:
                open_layers(network, open_layer_names)
            else:
                open_all(network)
        sums: dict[str, float] = {}
        count, started = 0, time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{max_epoch}", disable=not progress, leave=False)
        for batch in bar:
            images, pids = batch[0].to(device, memory_format=layout), batch[1].to(device)
            stats = train_step(
                model,
                images,
                pids,
                optimizer,
                loss_fn,
                max_grad_norm=max_grad_norm,
                amp=amp,
                scaler=scaler,
            )
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * len(pids)
            count += len(pids)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=f"{stats['acc']:.2f}")
        scheduler.step()
        record = {
            "epoch": epoch + 1,
            "lr": lr,
            "images": count,
            "seconds": time.perf_counter() - started,
        }
        record.update({k: v / max(count, 1) for k, v in sums.items()})
        due = eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == max_epoch)
        main = is_main_process()
        if evaluate is not None and due and main:
            record.update(evaluate(unwrap(model)))
        if not all(math.isfinite(v) for v in record.values() if isinstance(v, float)):
            raise NonFiniteLossError(f"epoch {epoch + 1} produced non-finite statistics {record}")
        if main:
            with open(out_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            save_checkpoint(
                out_dir,
                unwrap(model),
                epoch + 1,
                optimizer=optimizer,
                scheduler=scheduler,
                meta={**(meta or {}), "log": record},
                keep=keep,
                scaler=scaler,
            )
        barrier()
        if writer is not None:
            for key, value in record.items():
                if key != "epoch":
                    writer.add_scalar(key, value, epoch + 1)
            writer.flush()
        records.append(record)
    if writer is not None:
        writer.close()
    return records


def _tensorboard_writer(out_dir: Path):
    """A SummaryWriter in ``out_dir/tensorboard``, or None (with a warning) without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed: no TensorBoard logs", stacklevel=3)
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _truncate_log(path: Path, epoch: int) -> None:
    """Drop log lines of epochs after ``epoch`` (written by a run killed before its checkpoint)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= epoch]
    if len(kept) != len(lines):
        path.write_text("".join(ln + "\n" for ln in kept))
