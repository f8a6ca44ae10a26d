"""One network's weighted loss terms as a dict: the training step sums them and logs each."""

from __future__ import annotations

import torch

from omnireid.losses.cross_entropy import cross_entropy_label_smooth
from omnireid.losses.entropy import prediction_entropy
from omnireid.losses.triplet import batch_hard_triplet_loss


def compute_losses(
    logits: torch.Tensor,
    features: torch.Tensor | None,
    pids: torch.Tensor,
    *,
    label_smoothing: float = 0.1,
    triplet_weight: float = 0.0,
    triplet_margin: float = 0.3,
    entropy_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Weighted loss terms of ``(N, C)`` logits, ``(N, D)`` features and ``(N,)`` pids.

    Returns ``{"ce": L_ID}``, plus ``"triplet": lambda_t * L_triplet`` when ``triplet_weight``
    is non-zero and ``"entropy": -lambda_e * H(p)`` when ``entropy_weight`` is non-zero, so
    ``sum(terms.values())`` is the paper's ``L_ID + lambda_t L_triplet - lambda_e L_entropy``.
    ``features`` may be ``None`` when the triplet term is off.
    """
    terms = {"ce": cross_entropy_label_smooth(logits, pids, eps=label_smoothing)}
    if triplet_weight:
        if features is None:
            raise ValueError(
                "triplet_weight > 0 needs features; call the model with return_features=True"
            )
        terms["triplet"] = triplet_weight * batch_hard_triplet_loss(
            features, pids, margin=triplet_margin
        )
    if entropy_weight:
        terms["entropy"] = -entropy_weight * prediction_entropy(logits)
    return terms
