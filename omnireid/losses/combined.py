"""One network's weighted loss terms as a dict: the training step sums them and logs each."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from omnireid.losses.cross_entropy import cross_entropy_label_smooth
from omnireid.losses.entropy import prediction_entropy
from omnireid.losses.triplet import NoPositive, batch_hard_triplet_loss


def compute_losses(
    logits: torch.Tensor,
    features: torch.Tensor | None,
    pids: torch.Tensor,
    *,
    label_smoothing: float = 0.1,
    triplet_weight: float = 0.0,
    triplet_margin: float = 0.3,
    entropy_weight: float = 0.0,
    triplet_no_positive: NoPositive = "zero_distance",
) -> dict[str, torch.Tensor]:
    """Weighted loss terms of ``(N, C)`` logits, ``(N, D)`` features and ``(N,)`` pids.

    Returns ``{"ce": L_ID}``, plus ``"triplet": lambda_t * L_triplet`` when ``triplet_weight``
    is non-zero and ``"entropy": -lambda_e * H(p)`` when ``entropy_weight`` is non-zero, so
    ``sum(terms.values())`` is the paper's ``L_ID + lambda_t L_triplet - lambda_e L_entropy``.
    ``features`` may be ``None`` when the triplet term is off. ``triplet_no_positive``: see
    ``batch_hard_triplet_loss``.
    """
    terms = {"ce": cross_entropy_label_smooth(logits, pids, eps=label_smoothing)}
    if triplet_weight:
        if features is None:
            raise ValueError(
                "triplet_weight > 0 needs features; call the model with return_features=True"
            )
        terms["triplet"] = triplet_weight * batch_hard_triplet_loss(
            features, pids, margin=triplet_margin, no_positive=triplet_no_positive
        )
    if entropy_weight:
        terms["entropy"] = -entropy_weight * prediction_entropy(logits)
    return terms


@dataclass
class ReIDLoss:
    """``compute_losses`` with its weights as attributes: callable as a ``LossFn``, and a
    schedule (e.g. a triplet warm-up callback) may change a weight between epochs."""

    label_smoothing: float = 0.1
    triplet_weight: float = 0.0
    triplet_margin: float = 0.3
    entropy_weight: float = 0.0
    triplet_no_positive: NoPositive = "zero_distance"

    def __call__(
        self, logits: torch.Tensor, features: torch.Tensor | None, pids: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return compute_losses(
            logits,
            features,
            pids,
            label_smoothing=self.label_smoothing,
            triplet_weight=self.triplet_weight,
            triplet_margin=self.triplet_margin,
            entropy_weight=self.entropy_weight,
            triplet_no_positive=self.triplet_no_positive,
        )
