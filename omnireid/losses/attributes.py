"""Weighted binary cross-entropy for multi-label attribute recognition (DeepMAR weighting).

DeepMAR (Li, Chen and Huang, ACPR 2015; the loss ICCV'19 Sec. 4.2 follows) weights each label
by how rare its value is in the training data. With ``p_l`` the fraction of training images
that have attribute ``l`` (the positive ratio), a label ``y_il`` gets the weight

    w_il = exp(1 - p_l)   if y_il = 1   (rare positives weigh up to e)
    w_il = exp(p_l)       if y_il = 0   (rare negatives weigh up to e)

and the loss of ``N`` images with ``A`` attributes, sigmoid probabilities ``s_il``, is

    L = -1/(N A) sum_i sum_l w_il [y_il log s_il + (1 - y_il) log(1 - s_il)].

(The ACPR paper writes one weight ``exp(p_l / sigma^2)`` per attribute; the positive/negative
form above, with ``sigma = 1``, is the one used by the public DeepMAR-style PAR baselines.)
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def positive_ratios(labels: torch.Tensor) -> torch.Tensor:
    """``(N, A)`` 0/1 training labels -> ``(A,)`` fraction of positives per attribute."""
    if labels.dim() != 2 or labels.shape[0] == 0:
        raise ValueError(f"expected (N, A) labels with N > 0, got shape {tuple(labels.shape)}")
    return labels.float().mean(0)


def deepmar_weights(targets: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
    """``(N, A)`` weights ``exp(1 - p)`` on positives and ``exp(p)`` on negatives."""
    ratios = ratios.to(targets.device, torch.float32)
    return torch.where(targets > 0.5, torch.exp(1 - ratios), torch.exp(ratios))


def weighted_bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, ratios: torch.Tensor | None
) -> torch.Tensor:
    """Mean DeepMAR-weighted BCE of ``(N, A)`` logits and 0/1 targets (unweighted if no ratios)."""
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must match (N, A)"
        )
    targets = targets.float()
    if ratios is not None and ratios.shape != logits.shape[-1:]:
        raise ValueError(f"ratios must be ({logits.shape[-1]},), got {tuple(ratios.shape)}")
    weight = deepmar_weights(targets, ratios) if ratios is not None else None
    return F.binary_cross_entropy_with_logits(logits.float(), targets, weight=weight)


def attribute_losses(
    logits: torch.Tensor,
    features: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    ratios: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The training step's loss function for attributes: ``{"bce": weighted_bce_loss}``.

    Same signature as ``losses.compute_losses`` (``features`` is unused), so the engine's
    ``train_step`` runs it unchanged.
    """
    return {"bce": weighted_bce_loss(logits, targets, ratios)}
