"""Pseudo-identities for unlabelled images: k-reciprocal Jaccard distance, then DBSCAN.

The recipe of clustering-based unsupervised re-ID (e.g. Cluster Contrast, Dai et al. 2021):
the Jaccard distance between k-reciprocal neighbourhoods (``evaluation.rerank``) is robust to
the hubness of raw feature distances; density clustering on it groups images of one person and
leaves images it cannot place as outliers (label -1), which training then leaves out.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from torch.nn import functional as F

from omnireid.evaluation.rerank import jaccard_distance

_BLOCK = 2048


def dbscan(dist: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN on a precomputed ``(n, n)`` distance matrix: ``(n,)`` labels 0..K-1, -1 noise.

    A point with at least ``min_samples`` points (itself included) within ``eps`` is a core
    point; core points within ``eps`` of each other share a cluster; a non-core point within
    ``eps`` of a core point joins the cluster of its nearest core point; the rest are noise.
    Clusters are numbered in order of their first point.
    """
    n = dist.shape[0]
    rows, cols = [], []
    for start in range(0, n, _BLOCK):
        r, c = np.nonzero(dist[start : start + _BLOCK] <= eps)
        rows.append(r + start)
        cols.append(c)
    row, col = np.concatenate(rows), np.concatenate(cols)
    counts = np.bincount(row, minlength=n)
    core = counts >= min_samples
    both = core[row] & core[col]
    graph = csr_matrix((np.ones(both.sum(), np.int8), (row[both], col[both])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    labels = np.where(core, component, -1)
    border = ~core[row] & core[col]  # (non-core point, core neighbour) pairs
    if border.any():
        b_row, b_col = row[border], col[border]
        order = np.lexsort((dist[b_row, b_col], b_row))  # per point, nearest core first
        b_row, b_col = b_row[order], b_col[order]
        first = np.r_[True, b_row[1:] != b_row[:-1]]
        labels[b_row[first]] = component[b_col[first]]
    # renumber 0..K-1 by first appearance
    out = np.full(n, -1, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, label in enumerate(labels.tolist()):
        if label >= 0:
            out[i] = seen.setdefault(label, len(seen))
    return out


def pseudo_labels(
    features: torch.Tensor, *, eps: float = 0.5, min_samples: int = 4, k1: int = 30, k2: int = 6
) -> np.ndarray:
    """``(n,)`` cluster labels (-1: outlier) of ``(n, D)`` features: Euclidean distances of the
    L2-normalised features -> k-reciprocal Jaccard distance -> DBSCAN."""
    f = F.normalize(features.float(), dim=1)
    dist = torch.cdist(f, f).clamp_min(0).numpy()
    return dbscan(jaccard_distance(dist, k1=k1, k2=k2), eps, min_samples)


def untrainable(labels: np.ndarray) -> str | None:
    """Why a round's ``(n,)`` cluster labels give nothing to train on, or None when they do:
    no cluster (all outliers), one cluster (a contrastive loss over one centroid is 0), or
    only clusters of one image (no two images share a pseudo-identity)."""
    n = len(labels)
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, np.int64)
    if len(sizes) == 0:
        return (
            f"clustering found no cluster among the {n} target images (all outliers): raise "
            "adapt.eps or lower adapt.min_samples"
        )
    if len(sizes) == 1:
        return (
            f"clustering put {sizes[0]} of the {n} target images in one cluster: nothing to tell "
            "apart (the contrastive loss over one centroid is 0); lower adapt.eps"
        )
    if sizes.max() < 2:
        return (
            f"clustering found {len(sizes)} clusters of one image each among the {n} target "
            "images: no two images share a pseudo-identity to learn from; raise adapt.eps or "
            "adapt.min_samples"
        )
    return None


def centroids(features: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """``(K, D)`` L2-normalised mean of each cluster's L2-normalised features."""
    f = F.normalize(features.float(), dim=1)
    keep = torch.from_numpy(labels >= 0)
    index = torch.from_numpy(labels[labels >= 0])
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    sums = torch.zeros(k, f.shape[1]).index_add_(0, index, f[keep])
    return F.normalize(sums, dim=1)


def cluster_statistics(labels: np.ndarray, true_pids: np.ndarray | None = None) -> dict[str, float]:
    """Clusters, outlier share and, when the true identities are known (a benchmark: used for
    this report only, never for training), purity: the share of clustered images whose
    cluster's majority identity is their own, and the share of identities found."""
    clustered = labels >= 0
    stats = {
        "clusters": float(labels.max() + 1 if clustered.any() else 0),
        "outliers": float(1.0 - clustered.mean()) if len(labels) else 0.0,
    }
    if true_pids is not None and clustered.any():
        majority_hits = 0
        majorities = set()
        for k in range(int(labels.max()) + 1):
            members = true_pids[labels == k]
            values, counts = np.unique(members, return_counts=True)
            majority_hits += int(counts.max())
            majorities.add(int(values[counts.argmax()]))
        stats["purity"] = 100.0 * majority_hits / int(clustered.sum())
        stats["ids_found"] = 100.0 * len(majorities) / len(np.unique(true_pids))
    return stats
