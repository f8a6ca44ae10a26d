"""Query-gallery distance matrices, computed in row chunks so large problems fit in memory."""

from __future__ import annotations

from typing import Literal

import torch
from torch.nn import functional as F

Metric = Literal["euclidean", "cosine"]


def compute_distance_matrix(
    qf: torch.Tensor,
    gf: torch.Tensor,
    metric: Metric = "euclidean",
    normalize: bool = False,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """``(N, D)`` query and ``(M, D)`` gallery features -> ``(N, M)`` float32 distances.

    ``euclidean`` is the squared Euclidean distance ``|q|^2 + |g|^2 - 2 q.g``; ``cosine`` is
    ``1 - cos(q, g)``. ``normalize`` L2-normalises the features first. Rows are computed
    ``chunk_size`` at a time, so the only full-size allocation is the result.
    """
    if qf.dim() != 2 or gf.dim() != 2 or qf.shape[1] != gf.shape[1]:
        raise ValueError(
            f"features must be (N, D) and (M, D), got {tuple(qf.shape)} and {tuple(gf.shape)}"
        )
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"unknown metric {metric!r}; expected 'euclidean' or 'cosine'")
    qf, gf = qf.float(), gf.float()
    if normalize or metric == "cosine":
        qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
    out = torch.empty(qf.shape[0], gf.shape[0], dtype=torch.float32, device=qf.device)
    g_sq = gf.pow(2).sum(1)
    for start in range(0, qf.shape[0], chunk_size):
        q = qf[start : start + chunk_size]
        rows = out[start : start + chunk_size]
        if metric == "cosine":
            torch.mm(q, gf.t(), out=rows)
            rows.neg_().add_(1)
        else:
            rows.copy_(q.pow(2).sum(1, keepdim=True) + g_sq)
            rows.addmm_(q, gf.t(), beta=1, alpha=-2)
    return out
