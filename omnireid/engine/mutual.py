"""Deep mutual learning (Zhang et al. 2018, ICCV'19 supplementary): two networks trained together.

``MutualPair`` holds both. In train mode it returns their logits (and features) stacked,
``(2, N, C)`` and ``(2, N, D)``; ``mutual_losses`` turns those into named terms: each network's
own losses (suffix ``_1``/``_2``) plus its mimicry term towards the other's detached prediction.
In eval mode it returns model 1's, model 2's, or both features concatenated, ``(N, 2D)``: the
paper's ensemble, which concatenates rather than averages because features are for retrieval.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from omnireid.losses import compute_losses, mutual_learning_loss

Use = Literal["both", "model1", "model2"]


class MutualPair(nn.Module):
    def __init__(self, model1: nn.Module, model2: nn.Module, use: Use = "both") -> None:
        super().__init__()
        if use not in ("both", "model1", "model2"):
            raise ValueError(f"use must be 'both', 'model1' or 'model2', got {use!r}")
        self.model1 = model1
        self.model2 = model2
        self.use = use

    def networks(self) -> tuple[nn.Module, nn.Module]:
        """Both networks (the training loop freezes and opens layers in each)."""
        return self.model1, self.model2

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            if self.use == "model1":
                return self.model1(x)
            if self.use == "model2":
                return self.model2(x)
            return torch.cat([self.model1(x), self.model2(x)], dim=1)
        logits1, feats1 = self.model1(x, return_features=True)
        logits2, feats2 = self.model2(x, return_features=True)
        logits = torch.stack([logits1, logits2])
        return (logits, torch.stack([feats1, feats2])) if return_features else logits


def mutual_losses(
    logits: torch.Tensor,
    features: torch.Tensor | None,
    pids: torch.Tensor,
    *,
    mutual_weight: float = 1.0,
    **loss_options: float,
) -> dict[str, torch.Tensor]:
    """Named terms for ``(2, N, C)`` logits and ``(2, N, D)`` features of a ``MutualPair``.

    ``loss_options`` are ``compute_losses``'s (label smoothing, triplet and entropy weights).
    """
    if logits.dim() != 3 or logits.shape[0] != 2:
        raise ValueError(f"expected (2, N, C) logits from a MutualPair, got {tuple(logits.shape)}")
    terms: dict[str, torch.Tensor] = {}
    for i in (0, 1):
        own = compute_losses(
            logits[i], None if features is None else features[i], pids, **loss_options
        )
        terms.update({f"{k}_{i + 1}": v for k, v in own.items()})
    if mutual_weight:
        mimicry = mutual_learning_loss(logits[0], logits[1])
        terms.update({k: mutual_weight * v for k, v in mimicry.items()})
    return terms
