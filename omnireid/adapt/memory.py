"""The cluster memory and its contrastive loss (Cluster Contrast, Dai et al. 2021).

One L2-normalised centroid per pseudo-identity. A feature's loss is InfoNCE over all
centroids: ``-log(exp(q . c_y / tau) / sum_k exp(q . c_k / tau))``. After the loss is
computed, each centroid moves towards its batch members: ``c <- m c + (1 - m) q``, renormalised,
one member at a time in batch order (momentum ``m``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


class ClusterMemory:
    """A ``LossFn`` ``(logits, features, labels) -> {"contrast": loss}`` over the centroids;
    ``reset(centroids)`` loads a new round's clusters. The logits are not used."""

    def __init__(self, temperature: float = 0.05, momentum: float = 0.1) -> None:
        if temperature <= 0 or not 0 <= momentum < 1:
            raise ValueError(
                f"need temperature > 0 and 0 <= momentum < 1, got {temperature}, {momentum}"
            )
        self.temperature, self.momentum = temperature, momentum
        self.centroids = torch.zeros(0, 0)

    def reset(self, centroids: torch.Tensor) -> None:
        self.centroids = F.normalize(centroids.detach().float(), dim=1).clone()

    def similarities(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` cosine similarities of the features to the centroids."""
        centroids = self.centroids.to(features.device)
        return F.normalize(features.float(), dim=1) @ centroids.t()

    def __call__(
        self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        if len(self.centroids) == 0:
            raise RuntimeError("the cluster memory is empty: reset() it with the round's centroids")
        loss = F.cross_entropy(self.similarities(features) / self.temperature, labels)
        self.update(features.detach(), labels)
        return {"contrast": loss}

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        f = F.normalize(features.float(), dim=1).to(self.centroids.device)
        m = self.momentum
        centroids = self.centroids.clone()  # the loss's graph still holds the old tensor
        for x, y in zip(f, labels.tolist(), strict=True):
            moved = m * centroids[y] + (1 - m) * x
            centroids[y] = moved / moved.norm().clamp_min(1e-12)
        self.centroids = centroids

    def accuracy(
        self, _: torch.Tensor, features: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, float]:
        """A ``Monitor``: the share of features nearest their own cluster's centroid."""
        return {"acc": (self.similarities(features).argmax(1) == labels).float().mean().item()}
