"""Verification: is this pair the same person? Cosine scores, ROC, TPR at a fixed FPR.

Pairs are every query x gallery pair. Same-person (genuine) pairs share an id and come from
different cameras; same-id same-camera pairs are junk under the re-ID protocol and are left
out; every other pair is an impostor. A pair is accepted when its score ``>= threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from omnireid.evaluation.metrics import Ids, as_numpy

TARGET_FPRS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)


@dataclass(frozen=True)
class OperatingPoint:
    """Accept ``score >= threshold``: the rates it gives, and whether the impostor count can
    resolve the target (at least ``1 / target_fpr`` impostor pairs)."""

    target_fpr: float
    threshold: float
    tpr: float
    fpr: float
    resolvable: bool


def pair_scores(
    qf: torch.Tensor, gf: torch.Tensor, q_pids: Ids, g_pids: Ids, q_camids: Ids, g_camids: Ids
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of ``(N, D)`` x ``(M, D)`` features -> (genuine, impostor) scores."""
    if qf.dim() != 2 or gf.dim() != 2 or qf.shape[1] != gf.shape[1]:
        raise ValueError(
            f"features must be (N, D) and (M, D), got {tuple(qf.shape)}, {tuple(gf.shape)}"
        )
    q_pids, g_pids = as_numpy(q_pids), as_numpy(g_pids)
    q_camids, g_camids = as_numpy(q_camids), as_numpy(g_camids)
    if (len(q_pids), len(q_camids), len(g_pids), len(g_camids)) != (
        len(qf),
        len(qf),
        len(gf),
        len(gf),
    ):
        raise ValueError("pids/camids must have one entry per feature row")
    scores = (F.normalize(qf.float(), dim=1) @ F.normalize(gf.float(), dim=1).t()).numpy()
    same_id = q_pids[:, None] == g_pids[None, :]
    same_cam = q_camids[:, None] == g_camids[None, :]
    genuine = scores[same_id & ~same_cam]
    impostor = scores[~same_id]
    return genuine, impostor


def operating_point(genuine: np.ndarray, impostor: np.ndarray, target_fpr: float) -> OperatingPoint:
    """The lowest threshold whose false-accept rate is at most ``target_fpr``.

    With ``k = floor(target_fpr * n_impostor)`` false accepts allowed, the threshold is the
    smallest observed score above the ``(k+1)``-th highest impostor score (all scores when
    ``k >= n_impostor``).
    """
    if not 0 < target_fpr <= 1:
        raise ValueError(f"target FPR must be in (0, 1], got {target_fpr}")
    if len(genuine) == 0 or len(impostor) == 0:
        raise ValueError(f"need genuine and impostor pairs, got {len(genuine)} and {len(impostor)}")
    imp = np.sort(impostor)[::-1]
    allowed = int(np.floor(target_fpr * len(imp) + 1e-9))
    every = np.concatenate([genuine, impostor])
    if allowed >= len(imp):
        threshold = float(every.min())
    else:
        above = every[every > imp[allowed]]
        threshold = float(above.min()) if len(above) else float(np.nextafter(imp[allowed], np.inf))
    return OperatingPoint(
        target_fpr=target_fpr,
        threshold=threshold,
        tpr=float((genuine >= threshold).mean()),
        fpr=float((impostor >= threshold).mean()),
        resolvable=len(imp) * target_fpr >= 1,
    )


def roc_curve(
    genuine: np.ndarray, impostor: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at each distinct score, thresholds descending, from (0, 0)."""
    scores = np.concatenate([genuine, impostor])
    labels = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    tp, fp = np.cumsum(labels), np.cumsum(~labels)
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # end of each tie group
    tpr = np.r_[0.0, tp[last] / max(len(genuine), 1)]
    fpr = np.r_[0.0, fp[last] / max(len(impostor), 1)]
    return fpr, tpr, np.r_[np.inf, scores[last]]


def calibrate(
    genuine: np.ndarray,
    impostor: np.ndarray,
    target_fpr: float = 1e-3,
    report_fprs: Sequence[float] = TARGET_FPRS,
) -> dict:
    """Summary for a JSON file: pair counts, AUC, TPR at ``report_fprs``, suggested threshold."""
    fpr, tpr, _ = roc_curve(genuine, impostor)
    points = {f"{f:g}": operating_point(genuine, impostor, f).__dict__ for f in report_fprs}
    return {
        "num_genuine": len(genuine),
        "num_impostor": len(impostor),
        "auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
        "genuine_mean": float(np.mean(genuine)),
        "impostor_mean": float(np.mean(impostor)),
        "tpr_at_fpr": points,
        "suggested": operating_point(genuine, impostor, target_fpr).__dict__,
    }
