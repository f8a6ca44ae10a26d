"""Cross-entropy with label smoothing (Szegedy et al. 2016), the OSNet papers' ID loss."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def cross_entropy_label_smooth(
    logits: torch.Tensor, pids: torch.Tensor, eps: float = 0.1
) -> torch.Tensor:
    """Mean cross-entropy of ``(N, C)`` logits against smoothed ``(N,)`` identity labels.

    The target of sample ``i`` is ``(1 - eps) * onehot(pids[i]) + eps / C``: the true class gets
    ``1 - eps + eps / C`` and every other class ``eps / C``. For unweighted targets this is the
    same definition as ``F.cross_entropy(..., label_smoothing=eps)``. Returns a scalar.
    """
    if logits.dim() != 2 or pids.shape != (logits.shape[0],):
        raise ValueError(
            f"expected (N, C) logits and (N,) pids, got {tuple(logits.shape)} and "
            f"{tuple(pids.shape)}"
        )
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"label smoothing eps must be in [0, 1), got {eps}")
    log_probs = F.log_softmax(logits.float(), dim=1)
    nll = -log_probs.gather(1, pids.long().unsqueeze(1)).squeeze(1)  # (N,)
    uniform = -log_probs.mean(dim=1)  # (N,) cross-entropy against eps / C on every class
    return ((1.0 - eps) * nll + eps * uniform).mean()
