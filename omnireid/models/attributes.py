"""OSNet for multi-label person attribute recognition (ICCV'19 Sec. 4.2).

"A sigmoid-activated attribute prediction layer is added on the top of OSNet": ``AttributeNet``
runs the backbone's feature path (``forward_features`` then ``forward_embedding``) and a
linear head with one logit per attribute; ``predict`` applies the sigmoid.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from omnireid.models.osnet import OSNet
from omnireid.models.registry import build
from omnireid.models.spec import ModelSpec
from omnireid.models.weights import load_weights


class AttributeNet(nn.Module):
    """OSNet backbone + ``Linear(feature_dim, num_attributes)`` head.

    The backbone's identity classifier is replaced by ``nn.Identity`` (the module passed in is
    taken over, not copied): the attribute head is the only classifier. ``forward`` returns
    ``(N, A)`` logits in train and eval mode, or ``(logits, (N, feature_dim) embedding)`` with
    ``return_features=True``; ``predict`` returns ``(N, A)`` probabilities.
    """

    # the ModelSpec a loader attaches (``models.loader.build_for``); None for a built model
    spec: ModelSpec | None = None

    def __init__(self, backbone: OSNet, num_attributes: int) -> None:
        super().__init__()
        if not isinstance(backbone, OSNet):
            raise TypeError(f"expected an OSNet backbone, got {type(backbone).__name__}")
        if num_attributes < 1:
            raise ValueError(f"num_attributes must be >= 1, got {num_attributes}")
        backbone.classifier = nn.Identity()
        self.backbone = backbone
        self.num_attributes = num_attributes
        self.head = nn.Linear(backbone.feature_dim, num_attributes)
        nn.init.normal_(self.head.weight, 0, 0.01)
        nn.init.zeros_(self.head.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` images -> ``(N, feature_dim)`` embedding."""
        return self.backbone.forward_embedding(self.backbone.forward_features(x))

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        v = self.embed(x)
        logits = self.head(v)
        return (logits, v) if return_features else logits

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, A)`` attribute probabilities (sigmoid of the logits)."""
        return torch.sigmoid(self(x))


def build_attribute_model(
    arch: str,
    num_attributes: int,
    *,
    weights: str | Path | None = None,
    **options,
) -> AttributeNet:
    """``AttributeNet`` on ``build(arch, **options)``; ``weights`` initialise the backbone
    (any checkpoint ``load_weights`` reads, e.g. a re-ID model; its classifier is ignored)."""
    backbone = build(arch, num_classes=1, **options)
    if weights is not None:
        load_weights(backbone, weights)
    return AttributeNet(backbone, num_attributes)
