"""Entropy of the softmax prediction: the confidence penalty of Pereyra et al. 2017."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy ``-sum_c p_c log p_c`` of the softmax of ``(N, C)`` logits (nats).

    A term to be maximised: the training objective is ``L_ID - lambda_e * entropy``. Ranges from
    0 (one-hot prediction) to ``log C`` (uniform). Returns a scalar.
    """
    if logits.dim() != 2:
        raise ValueError(f"expected (N, C) logits, got {tuple(logits.shape)}")
    log_probs = F.log_softmax(logits.float(), dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1).mean()
