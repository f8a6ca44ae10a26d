"""Batch-hard triplet loss (Hermans et al. 2017), the auxiliary metric loss of the OSNet papers,
and the embedding statistics that tell a collapsing triplet run from a healthy one."""

from __future__ import annotations

from typing import Literal

import torch
from torch.nn import functional as F

NoPositive = Literal["zero_distance", "skip"]


def pairwise_euclidean(features: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` features -> ``(N, N)`` Euclidean (not squared) distances.

    Squared distances are clamped at 1e-12 before the square root, so identical points (the
    diagonal, duplicates) give a finite, zero gradient instead of NaN.
    """
    sq = features.pow(2).sum(dim=1)
    d2 = sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * features @ features.t()
    return d2.clamp(min=1e-12).sqrt()


def _hardest(
    features: torch.Tensor, pids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per anchor: the hardest positive distance (over the *other* samples of its identity,
    ``-inf`` when there is none), the hardest negative distance, and whether a positive exists."""
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
    hardest_pos = dist.masked_fill(~positive, float("-inf")).amax(dim=1)  # (N,)
    hardest_neg = dist.masked_fill(~negative, float("inf")).amin(dim=1)  # (N,)
    return hardest_pos, hardest_neg, positive.any(dim=1)


def batch_hard_triplet_loss(
    features: torch.Tensor,
    pids: torch.Tensor,
    margin: float = 0.3,
    no_positive: NoPositive = "zero_distance",
) -> torch.Tensor:
    """Batch-hard triplet loss of ``(N, D)`` features with ``(N,)`` identity labels.

    For each anchor: ``relu(max_p d(a, p) - min_n d(a, n) + margin)``, with the hardest
    positive over the other samples of its identity and the hardest negative over all samples
    of other identities; the result is the mean over anchors.

    An anchor with no other sample of its identity in the batch (random, non P x K batches):
    ``no_positive="zero_distance"`` (the default) counts it with ``d(a, p) = 0``, so it still
    pushes its nearest negative beyond the margin; this is the reference implementation's
    behaviour (its positives include the anchor itself), which the papers' triplet runs with
    random batches used. ``"skip"`` leaves such anchors out of the mean and raises when no
    anchor has a positive. With P x K batches (K >= 2) the two are identical.
    Raises ``ValueError`` when the batch has only one identity.
    """
    if no_positive not in ("zero_distance", "skip"):
        raise ValueError(f"no_positive must be 'zero_distance' or 'skip', got {no_positive!r}")
    hardest_pos, hardest_neg, has_positive = _hardest(features, pids)
    if no_positive == "zero_distance":
        hardest_pos = torch.where(has_positive, hardest_pos, torch.zeros_like(hardest_pos))
        return F.relu(hardest_pos - hardest_neg + margin).mean()
    if not bool(has_positive.any()):
        raise ValueError(
            "triplet loss needs at least one positive pair (two samples of one identity) in a "
            "batch; every pid appears once - use an identity sampler with K >= 2"
        )
    per_anchor = F.relu(hardest_pos - hardest_neg + margin)
    return per_anchor[has_positive].mean()


@torch.no_grad()
def embedding_statistics(
    features: torch.Tensor, pids: torch.Tensor, margin: float = 0.3
) -> dict[str, float]:
    """How spread out a batch's ``(N, D)`` embeddings are, to detect a collapse.

    ``feat_norm``: mean L2 norm; ``feat_dist``: mean pairwise Euclidean distance;
    ``feat_spread``: ``feat_dist / feat_norm``, scale-free (0 when every image gets the same
    feature, about 1.4 for random directions); ``active_triplets``: the share of anchors with
    a positive whose hardest triplet still violates ``margin`` (when the embedding collapses
    every one does, and the triplet term sits at ``weight x margin``).
    """
    f = features.float()
    n = f.shape[0]
    dist = pairwise_euclidean(f)
    off = ~torch.eye(n, dtype=torch.bool, device=f.device)
    norm = f.norm(dim=1).mean()
    mean_dist = dist[off].mean() if n > 1 else torch.zeros(())
    stats = {
        "feat_norm": norm.item(),
        "feat_dist": mean_dist.item(),
        "feat_spread": (mean_dist / norm.clamp_min(1e-12)).item(),
    }
    if len(torch.unique(pids)) > 1:
        hardest_pos, hardest_neg, has_positive = _hardest(f, pids)
        if bool(has_positive.any()):
            violated = (hardest_pos - hardest_neg + margin > 0)[has_positive]
            stats["active_triplets"] = violated.float().mean().item()
    return stats
