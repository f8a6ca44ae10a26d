"""Batch-hard triplet loss (Hermans et al. 2017), the auxiliary metric loss of the OSNet papers."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def pairwise_euclidean(features: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` features -> ``(N, N)`` Euclidean (not squared) distances.

    Squared distances are clamped at 1e-12 before the square root, so identical points (the
    diagonal, duplicates) give a finite, zero gradient instead of NaN.
    """
    sq = features.pow(2).sum(dim=1)
    d2 = sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * features @ features.t()
    return d2.clamp(min=1e-12).sqrt()


def batch_hard_triplet_loss(
    features: torch.Tensor, pids: torch.Tensor, margin: float = 0.3
) -> torch.Tensor:
    """Batch-hard triplet loss of ``(N, D)`` features with ``(N,)`` identity labels.

    For each anchor: ``relu(max_p d(a, p) - min_n d(a, n) + margin)``, with the hardest
    positive taken over the other samples of its identity and the hardest negative over all
    samples of other identities; the result is the mean over anchors. Anchors that have no
    other sample of their identity are left out of the mean (a PK sampler with K >= 2 never
    produces them). Raises ``ValueError`` when the batch has no positive pair or no negative.
    """
    if features.dim() != 2 or pids.shape != (features.shape[0],):
        raise ValueError(
            f"expected (N, D) features and (N,) pids, got {tuple(features.shape)} and "
            f"{tuple(pids.shape)}"
        )
    n = features.shape[0]
    dist = pairwise_euclidean(features.float())
    same = pids.unsqueeze(0) == pids.unsqueeze(1)  # (N, N)
    positive = same & ~torch.eye(n, dtype=torch.bool, device=features.device)
    negative = ~same
    if not bool(negative.any()):
        raise ValueError(
            f"triplet loss needs at least two identities in a batch, got pid(s) "
            f"{sorted(set(pids.tolist()))}"
        )
    has_positive = positive.any(dim=1)
    if not bool(has_positive.any()):
        raise ValueError(
            "triplet loss needs at least one positive pair (two samples of one identity) in a "
            "batch; every pid appears once - use an identity sampler with K >= 2"
        )
    hardest_pos = dist.masked_fill(~positive, float("-inf")).amax(dim=1)  # (N,)
    hardest_neg = dist.masked_fill(~negative, float("inf")).amin(dim=1)  # (N,)
    per_anchor = F.relu(hardest_pos - hardest_neg + margin)
    return per_anchor[has_positive].mean()
