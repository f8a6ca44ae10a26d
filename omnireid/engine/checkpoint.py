"""Training checkpoints: weights in safetensors, the rest of the training state beside them.

A checkpoint is a folder (its file names are ``rundir.CheckpointDir``'s)::

    epoch-0012/
      model.safetensors   the model's state_dict (loadable by ``models.weights.load_weights``)
      state.pt            optimizer, scheduler, RNG states, epoch (tensors, numbers, strings only:
                          read back with ``torch.load(weights_only=True)``)
      meta.json           the model spec (``models.spec.ModelSpec``): architecture,
                          preprocessing, the weights' SHA-256, provenance, config, the epoch's
                          record (human-readable JSON)

It is written to a temporary folder and renamed into place, so a kill mid-write never leaves a
half-written checkpoint under the final name; ``latest`` is a small text file naming the newest
complete checkpoint, replaced atomically too. A full disk stops the run with one line naming the
folder, the earlier checkpoints untouched. Resuming checks a checkpoint before trusting it
(readable, complete, finite) and falls back to the previous one when the newest is damaged.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import nn

from omnireid.engine import files as files_on_disk
from omnireid.engine.distributed import unwrap
from omnireid.errors import CheckpointError
from omnireid.models.spec import ModelSpec, load_spec
from omnireid.rundir import EPOCH_PREFIX, CheckpointDir, RunDir

log = logging.getLogger(__name__)

__all__ = [
    "TrainingState",
    "capture_rng",
    "checkpoint_candidates",
    "latest_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "restore_latest",
    "restore_rng",
    "save_checkpoint",
]


@dataclass
class TrainingState:
    """What ``load_checkpoint`` restores besides the weights, and the checkpoint's spec."""

    epoch: int
    spec: ModelSpec | None = None


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run folder (None if there is none)."""
    latest = RunDir(Path(directory)).latest()
    return None if latest is None else latest.path


def capture_rng() -> dict[str, Any]:
    """The RNG states of Python, NumPy and torch (CPU and CUDA) as weights-only-loadable data."""
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    kind, keys, pos, has_gauss, gauss = legacy
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
    spec: ModelSpec | None = None,
    meta: Mapping[str, Any] | None = None,
    keep: int | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write ``directory/epoch-XXXX`` atomically and point ``directory/latest`` at it.

    ``spec`` is written beside the weights with this ``epoch`` and the SHA-256 of the weights
    file (none is written without one). ``meta``, a format-1 ``meta.json`` dict, is read as
    its spec (for callers not yet moved to ``ModelSpec``). ``keep`` limits how many epoch
    checkpoints stay (oldest removed first, never the new one); ``None`` or 0 keeps them all.
    A write that fails (a full disk) leaves the earlier checkpoints and ``latest`` as they were
    and raises ``TrainingError`` naming the folder.
    """
    run = RunDir(Path(directory))
    directory, final = run.path, run.checkpoint(epoch).path
    if spec is None and meta is not None:
        spec = ModelSpec.from_dict(meta, source="the meta given to save_checkpoint")
    weights = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    state: dict[str, Any] = {"epoch": epoch, "rng": capture_rng()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if scaler is not None:  # fp16 loss scale: resuming without it would restart at 2**16
        state["scaler"] = scaler.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    tensors = save_safetensors(weights)
    files: dict[str, bytes | str] = {
        CheckpointDir.MODEL: tensors,
        CheckpointDir.STATE: buffer.getvalue(),
    }
    if spec is not None:
        digest = hashlib.sha256(tensors).hexdigest()
        files[CheckpointDir.SPEC] = replace(spec, epoch=epoch, weights_sha256=digest).to_json()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=directory))
        try:
            for name, data in files.items():
                files_on_disk.write_synced(
                    tmp / name, data.encode() if isinstance(data, str) else data
                )
            old = None
            if final.exists():  # an epoch trained again after a fallback: swap, then remove
                old = Path(tempfile.mkdtemp(prefix=f".{final.name}-old-", dir=directory))
                os.replace(final, old / final.name)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        files_on_disk.write_atomic(run.latest_pointer, final.name + "\n")
    except OSError as e:
        raise files_on_disk.disk_error(
            e, f"the checkpoint of epoch {epoch}", directory, "the earlier checkpoints are"
        ) from e
    if keep:
        for old_epoch in sorted(directory.glob(f"{EPOCH_PREFIX}*"))[:-keep]:
            if old_epoch != final:
                shutil.rmtree(old_epoch, ignore_errors=True)
    return final


def _non_finite(tensors: dict[str, Any]) -> list[str]:
    return [
        k
        for k, t in tensors.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all()
    ]


def _optimizer_tensors(state: Any) -> dict[str, Any]:
    """The tensors of an optimiser state dict's per-parameter state, by a readable name."""
    per_param = state.get("state", {}) if isinstance(state, dict) else {}
    return {
        f"optimizer.state[{i}].{k}": v
        for i, values in (per_param.items() if isinstance(per_param, dict) else ())
        if isinstance(values, dict)
        for k, v in values.items()
    }


def read_checkpoint(
    path: str | Path, *, need: tuple[str, ...] = ()
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(weights, training state)`` of a checkpoint folder, checked to be intact: readable,
    the state holding ``epoch``, ``rng`` and the ``need``-ed entries, every float tensor of
    the weights and the optimiser state finite. Anything else is a ``CheckpointError`` whose
    message names the folder and what is wrong."""
    folder = CheckpointDir(Path(path))
    path = folder.path
    if not folder.is_complete:
        raise CheckpointError(f"{path} is not a checkpoint folder (no {folder.MODEL})")
    try:
        weights = load_file(str(folder.model))
        state = torch.load(folder.state, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors, zip and unpickling errors of damaged files
        raise CheckpointError(f"{path} is damaged and cannot be read ({e})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{folder.state} is damaged: not a training state")
    missing = [k for k in ("epoch", "rng", *need) if k not in state]
    if missing or not isinstance(state["epoch"], int):
        raise CheckpointError(f"{folder.state} is damaged: it lacks {missing or ['epoch']}")
    bad = _non_finite(weights) + _non_finite(_optimizer_tensors(state.get("optimizer")))
    if bad:
        raise CheckpointError(
            f"{path} holds NaN or infinite values in {len(bad)} tensor(s) (e.g. {bad[:3]})"
        )
    return weights, state


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
    checkpoint folder. A damaged folder (unreadable, missing entries, non-finite values, not
    fitting the model) raises ``CheckpointError`` naming it."""
    path = Path(path)
    need = tuple(k for k, part in (("optimizer", optimizer), ("scheduler", scheduler)) if part)
    weights, state = read_checkpoint(path, need=need)
    spec = load_spec(path)  # either format; a damaged one makes the checkpoint unusable
    try:
        unwrap(model).load_state_dict(weights, strict=True)
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if restore_rng_state:
            restore_rng(state["rng"])
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        reason = " ".join(str(e).split())[:300]
        raise CheckpointError(f"{path} does not fit this run: {reason}") from e
    return TrainingState(epoch=state["epoch"], spec=spec)


def checkpoint_candidates(directory: str | Path) -> list[Path]:
    """The checkpoint folders of a run folder to resume from, in order: the one ``latest``
    names, then every ``epoch-*`` folder newest first."""
    run = RunDir(Path(directory))
    candidates = [c.path for c in run.checkpoints()]
    named = run.named_latest()
    if named in candidates:
        candidates = [named] + [c for c in candidates if c != named]
    return candidates


def restore_latest(
    directory: str | Path,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Resume from the newest intact checkpoint of a run folder; returns its epoch (0: none).

    When the latest checkpoint is damaged (unreadable, entries missing, NaN in its weights),
    older ones are tried, newest first; one warning names the checkpoint resumed from and
    each one skipped, with the reason.
    """
    directory = Path(directory)
    candidates = checkpoint_candidates(directory)
    skipped: list[str] = []
    for path in candidates:
        try:
            state = load_checkpoint(
                path, model, optimizer=optimizer, scheduler=scheduler, scaler=scaler
            )
        except CheckpointError as e:
            skipped.append(str(e))
            continue
        if skipped:
            log.warning(
                "resuming from %s instead of the damaged latest checkpoint: %s",
                path.name,
                "; ".join(skipped),
            )
        return state.epoch
    if candidates:
        raise CheckpointError(
            f"no checkpoint in {directory} can be read ({skipped[0]}); remove them to restart"
        )
    return 0
