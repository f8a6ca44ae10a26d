"""Deep mutual learning (Zhang et al. 2018, ICCV'19 supplementary): two networks trained together.

``MutualPair`` holds both. In train mode it returns their logits (and features) stacked,
``(2, N, C)`` and ``(2, N, D)``; ``losses.mutual_losses`` turns those into named terms: each
network's own losses (suffix ``_1``/``_2``) plus its mimicry term towards the other's detached
prediction.
In eval mode it returns model 1's, model 2's, or both features concatenated, ``(N, 2D)``: the
paper's ensemble, which concatenates rather than averages because features are for retrieval.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import nn

from omnireid.models.spec import ModelSpec

Use = Literal["both", "model1", "model2"]


class MutualPair(nn.Module):
    # the ModelSpec a loader attaches (``models.loader.build_for``); None for a built pair
    spec: ModelSpec | None = None

    def __init__(self, model1: nn.Module, model2: nn.Module, use: Use = "both") -> None:
        super().__init__()
        if use not in ("both", "model1", "model2"):
            raise ValueError(f"use must be 'both', 'model1' or 'model2', got {use!r}")
        self.model1 = model1
        self.model2 = model2
        self.use = use
        self.arch = getattr(model1, "arch", None)

    @property
    def feature_dim(self) -> int:
        """Size of the eval output: one network's, or both concatenated for ``use="both"``."""
        dim = cast(int, self.model1.feature_dim)  # an OSNet's or a FastOSNet's
        return 2 * dim if self.use == "both" else dim

    def networks(self) -> tuple[nn.Module, nn.Module]:
        """Both networks (frozen-base fine-tuning opens layers in each)."""
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
