"""Optimisers, per-epoch learning-rate schedules and staged fine-tuning (open/freeze layers).

The papers' recipes: from scratch, SGD (momentum 0.9) at lr 0.065, x0.1 at epochs 150, 225 and
300 of 350; fine-tuning, AMSGrad at lr 0.0015, x0.1 every 60 of 150 epochs, with only the
classifier open for the first 10 epochs. Weight decay 5e-4 in both.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

OptimizerName = Literal["sgd", "adam", "amsgrad"]
SchedulerName = Literal["multistep", "cosine"]


def build_optimizer(
    model_or_params: nn.Module | Iterable[nn.Parameter],
    name: OptimizerName,
    lr: float,
    *,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    no_decay_bias_norm: bool = False,
) -> torch.optim.Optimizer:
    """SGD (momentum, no dampening, no Nesterov), Adam, or AMSGrad (Adam with ``amsgrad=True``).

    Every parameter is included, frozen ones too, so one optimiser serves all fine-tuning stages
    (a parameter without a gradient is skipped by ``step``). Weight decay applies to all of
    them, as in the papers' code, unless ``no_decay_bias_norm``: then 1-D parameters (biases
    and norm-layer scales/shifts) form a second group with ``weight_decay=0``.
    """
    params = list(
        model_or_params.parameters() if isinstance(model_or_params, nn.Module) else model_or_params
    )
    if not params:
        raise ValueError("build_optimizer got no parameters")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if no_decay_bias_norm:
        groups: list[dict] = [
            {"params": [p for p in params if p.dim() > 1]},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"params": params}]
    if name == "sgd":
        return _fused(
            torch.optim.SGD,
            groups,
            lr=lr,
            momentum=momentum,
            dampening=0.0,
            nesterov=False,
            weight_decay=weight_decay,
        )
    if name in ("adam", "amsgrad"):
        return _fused(
            torch.optim.Adam,
            groups,
            lr=lr,
            betas=betas,
            weight_decay=weight_decay,
            amsgrad=name == "amsgrad",
        )
    raise ValueError(f"unknown optimizer {name!r}; expected one of 'sgd', 'adam', 'amsgrad'")


def _fused(
    cls: Callable[..., torch.optim.Optimizer], groups: list[dict], **options
) -> torch.optim.Optimizer:
    """``cls`` with its fused implementation (one kernel for all parameters: ~10x faster steps
    than the per-parameter loop on CPU) where this torch and device have it, else foreach.

    The update rule is the same; only floating-point rounding differs.
    """
    try:
        return cls(groups, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for these tensors
        return cls(groups, foreach=True, **options)


def lr_factor(
    epoch: int,
    name: SchedulerName,
    *,
    max_epoch: int,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.01,
) -> float:
    """Multiplier of the base lr at ``epoch`` (0-based); see ``build_scheduler``."""
    if name == "multistep":
        factor = gamma ** bisect.bisect_right(list(milestones), epoch)
    elif name == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(epoch, max_epoch) / max_epoch))
    else:
        raise ValueError(f"unknown scheduler {name!r}; expected 'multistep' or 'cosine'")
    if epoch < warmup_epochs:
        factor *= warmup_factor + (1.0 - warmup_factor) * epoch / warmup_epochs
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: SchedulerName,
    *,
    max_epoch: int,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.01,
) -> LambdaLR:
    """A per-epoch schedule: call ``scheduler.step()`` once at the end of every epoch.

    Epoch ``e`` (0-based) trains at ``base_lr * f(e)``:

    - ``multistep``: ``f(e) = gamma ** (number of milestones <= e)``, so a milestone of 150
      means epochs 0-149 use the base lr and epoch 150 onwards ``gamma * lr``.
    - ``cosine``: ``f(e) = (1 + cos(pi e / max_epoch)) / 2``, no restart, 0 at ``max_epoch``.

    Warm-up multiplies ``f`` by a factor rising linearly from ``warmup_factor`` at epoch 0 to 1
    at ``warmup_epochs``.
    """
    if name not in ("multistep", "cosine"):
        raise ValueError(f"unknown scheduler {name!r}; expected 'multistep' or 'cosine'")
    if max_epoch < 1:
        raise ValueError(f"max_epoch must be >= 1, got {max_epoch}")
    steps = list(milestones)
    if name == "multistep" and (
        not steps or steps != sorted(set(steps)) or steps[0] < 1 or steps[-1] >= max_epoch
    ):
        raise ValueError(
            f"multistep needs increasing milestones in [1, max_epoch={max_epoch}), got {steps}"
        )
    if warmup_epochs < 0 or not 0.0 < warmup_factor <= 1.0:
        raise ValueError(
            f"need warmup_epochs >= 0 and 0 < warmup_factor <= 1, got {warmup_epochs} and "
            f"{warmup_factor}"
        )

    def factor(epoch: int) -> float:
        return lr_factor(
            epoch,
            name,
            max_epoch=max_epoch,
            milestones=steps,
            gamma=gamma,
            warmup_epochs=warmup_epochs,
            warmup_factor=warmup_factor,
        )

    return LambdaLR(optimizer, factor)


def check_layer_names(model: nn.Module, names: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the top-level children when ``names`` has one that is not."""
    children = [name for name, _ in model.named_children()]
    unknown = [name for name in names if name not in children]
    if unknown:
        raise ValueError(
            f"unknown layer(s) {unknown} for {type(model).__name__}; top-level children: {children}"
        )


def open_layers(model: nn.Module, names: Sequence[str]) -> None:
    """Train only the named top-level children (e.g. ``["classifier"]``); freeze the rest.

    The named children go to train mode with ``requires_grad=True``; every other child goes to
    eval mode with ``requires_grad=False``, so its BatchNorm running statistics stay fixed.
    The model itself is put in train mode (OSNet returns logits only then). Call this after
    ``model.train()``, which would reopen the frozen norms.
    """
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of layer names, got the string {names!r}")
    check_layer_names(model, names)
    model.train()
    for p in model.parameters(recurse=False):
        p.requires_grad_(False)
    for name, child in model.named_children():
        is_open = name in names
        child.train(is_open)
        child.requires_grad_(is_open)


def open_all(model: nn.Module) -> None:
    """Undo ``open_layers``: the whole model in train mode with every parameter trainable."""
    model.train()
    model.requires_grad_(True)
