"""Deep mutual learning (Zhang et al. 2018): two networks mimic each other's predictions."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from omnireid.losses.combined import ReIDLoss


def kl_divergence(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``KL(p_target || p)`` of the softmaxes of two ``(N, C)`` logits, summed over classes and
    averaged over the batch. Gradients flow into both arguments; detach the target yourself."""
    return F.kl_div(
        F.log_softmax(logits.float(), dim=1),
        F.log_softmax(target_logits.float(), dim=1),
        reduction="batchmean",
        log_target=True,
    )


def mutual_learning_loss(logits1: torch.Tensor, logits2: torch.Tensor) -> dict[str, torch.Tensor]:
    """The two DML mimicry terms of ``(N, C)`` logits from network 1 and network 2.

    ``mutual_1 = KL(p2 || p1)`` trains network 1 towards network 2's (detached) prediction and
    ``mutual_2 = KL(p1 || p2)`` trains network 2 towards network 1's, as in Eq. 3-4 of Zhang et
    al. Each is a batch-mean scalar; add ``mutual_1`` to network 1's losses and ``mutual_2`` to
    network 2's (summing both into one backward is safe: neither leaks into the other network).
    """
    if logits1.shape != logits2.shape or logits1.dim() != 2:
        raise ValueError(
            f"expected two (N, C) logits of one shape, got {tuple(logits1.shape)} and "
            f"{tuple(logits2.shape)}"
        )
    return {
        "mutual_1": kl_divergence(logits2.detach(), logits1),
        "mutual_2": kl_divergence(logits1.detach(), logits2),
    }


def mutual_losses(
    logits: torch.Tensor,
    features: torch.Tensor | None,
    pids: torch.Tensor,
    *,
    mutual_weight: float = 1.0,
    own: ReIDLoss | None = None,
) -> dict[str, torch.Tensor]:
    """Named terms for ``(2, N, C)`` logits and ``(2, N, D)`` features of a ``MutualPair``:
    each network's own terms (``own``, default plain label-smoothed CE; suffix ``_1``/``_2``)
    and, weighted by ``mutual_weight``, each network's mimicry term.
    """
    if logits.dim() != 3 or logits.shape[0] != 2:
        raise ValueError(f"expected (2, N, C) logits from a MutualPair, got {tuple(logits.shape)}")
    own = own or ReIDLoss()
    terms: dict[str, torch.Tensor] = {}
    for i in (0, 1):
        mine = own(logits[i], None if features is None else features[i], pids)
        terms.update({f"{k}_{i + 1}": v for k, v in mine.items()})
    if mutual_weight:
        mimicry = mutual_learning_loss(logits[0], logits[1])
        terms.update({k: mutual_weight * v for k, v in mimicry.items()})
    return terms
