"""Training checkpoints: weights in safetensors, the rest of the training state beside them.

A checkpoint is a folder::

    epoch-0012/
      model.safetensors   the model's state_dict (loadable by ``models.weights.load_weights``)
      state.pt            optimizer, scheduler, RNG states, epoch (tensors, numbers, strings only:
                          read back with ``torch.load(weights_only=True)``)
      meta.json           epoch, architecture, preprocessing, config, metrics (human-readable)

It is written to a temporary folder and renamed into place, so a kill mid-write never leaves a
half-written checkpoint under the final name; ``latest`` is a small text file naming the newest
complete checkpoint, replaced atomically too.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from omnireid.engine.distributed import unwrap
from omnireid.errors import CheckpointError
from omnireid.models.weights import LATEST, MODEL_FILE, latest_checkpoint, read_meta

log = logging.getLogger(__name__)

__all__ = [
    "TrainingState",
    "capture_rng",
    "latest_checkpoint",
    "load_checkpoint",
    "restore_latest",
    "restore_rng",
    "save_checkpoint",
]


@dataclass
class TrainingState:
    """What ``load_checkpoint`` restores besides the weights."""

    epoch: int
    meta: dict[str, Any] = field(default_factory=dict)


def capture_rng() -> dict[str, Any]:
    """The RNG states of Python, NumPy and torch (CPU and CUDA) as weights-only-loadable data."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "gauss": gauss,
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng``."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    epoch: int,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    meta: dict[str, Any] | None = None,
    keep: int | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write ``directory/epoch-XXXX`` atomically and point ``directory/latest`` at it.

    ``keep`` limits how many epoch checkpoints stay (oldest removed first, never the new one);
    ``None`` or 0 keeps them all.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"epoch-{epoch:04d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=directory))
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
        save_file(weights, str(tmp / MODEL_FILE))
        state = {"epoch": epoch, "rng": capture_rng()}
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        if scheduler is not None:
            state["scheduler"] = scheduler.state_dict()
        if scaler is not None:  # fp16 loss scale: resuming without it would restart at 2**16
            state["scaler"] = scaler.state_dict()
        torch.save(state, tmp / "state.pt")
        (tmp / "meta.json").write_text(json.dumps({"epoch": epoch, **(meta or {})}, indent=2))
        for f in tmp.iterdir():  # data on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = directory / f".{LATEST}.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, directory / LATEST)
    if keep:
        for old in sorted(directory.glob("epoch-*"))[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    restore_rng_state: bool = True,
    scaler: torch.amp.GradScaler | None = None,
) -> TrainingState:
    """Restore weights (strictly), optimizer, scheduler, gradient scaler and RNG state from a
    checkpoint folder. An unreadable folder raises ``CheckpointError`` naming it."""
    path = Path(path)
    if not (path / MODEL_FILE).is_file():
        raise CheckpointError(f"{path} is not a checkpoint folder (no {MODEL_FILE})")
    try:
        weights = load_file(str(path / MODEL_FILE))
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors, zip and unpickling errors of damaged files
        raise CheckpointError(f"{path} is damaged and cannot be read ({e})") from e
    unwrap(model).load_state_dict(weights, strict=True)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    if restore_rng_state:
        restore_rng(state["rng"])
    meta = read_meta(path)
    return TrainingState(epoch=int(state["epoch"]), meta=meta)


def restore_latest(
    directory: str | Path,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Resume from the newest intact checkpoint of a run folder; returns its epoch (0: none).

    When the latest checkpoint is damaged, older ``epoch-*`` folders are tried, newest first,
    with a warning naming what was skipped.
    """
    directory = Path(directory)
    latest = latest_checkpoint(directory)
    candidates = sorted(directory.glob("epoch-[0-9]*"), reverse=True)
    if latest is not None:
        candidates = [latest] + [c for c in candidates if c != latest]
    for path in candidates:
        try:
            state = load_checkpoint(
                path, model, optimizer=optimizer, scheduler=scheduler, scaler=scaler
            )
        except CheckpointError as e:
            log.warning("%s; trying an older checkpoint", e)
            continue
        if path != latest:
            log.warning("resuming from %s instead of the damaged latest checkpoint", path.name)
        return state.epoch
    if candidates:
        raise CheckpointError(f"no checkpoint in {directory} can be read; remove them to restart")
    return 0
