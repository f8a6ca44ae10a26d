"""The whole same-domain protocol: features of query and gallery, distances, ranking metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from omnireid.data.datasets.base import ReIDDataset
from omnireid.errors import OmniReIDError
from omnireid.evaluation.distance import Metric, compute_distance_matrix
from omnireid.evaluation.features import Embedder, Features, extract_features
from omnireid.evaluation.metrics import RankResult, evaluate_rank, evaluate_single_gallery_shot


@dataclass
class Evaluation:
    result: RankResult
    query: Features
    gallery: Features
    distmat: torch.Tensor


def evaluate_model(
    embedder: Embedder,
    dataset: ReIDDataset,
    *,
    metric: Metric = "euclidean",
    normalize: bool = False,
    rerank: bool = False,
    flip: bool = False,
    batch_size: int = 32,
    num_workers: int = 0,
    skip_unreadable: bool = False,
    progress: bool = True,
    single_gallery_shot: bool = False,
) -> Evaluation:
    """Extract query and gallery features with ``embedder`` (its runner, fed as its spec's
    preprocessing says), rank the gallery for every query, score it.

    ``single_gallery_shot`` scores CMC with the CUHK03 single-gallery-shot protocol (seeded).
    """
    common: dict[str, Any] = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        device=embedder.device,
        flip=flip,
        skip_unreadable=skip_unreadable,
        progress=progress,
    )
    run, transform = embedder.runner, embedder.transform
    query = extract_features(run, dataset.query, transform, desc="query", **common)
    gallery = extract_features(run, dataset.gallery, transform, desc="gallery", **common)
    for part, name in ((query, "query"), (gallery, "gallery")):
        if len(part.feats) == 0:
            raise OmniReIDError(
                f"all {len(part.skipped)} {name} images of {dataset.name} were unreadable and "
                "skipped: nothing to evaluate"
            )
    distmat = compute_distance_matrix(query.feats, gallery.feats, metric, normalize)
    if rerank:
        from omnireid.evaluation.rerank import rerank as k_reciprocal

        q_q = compute_distance_matrix(query.feats, query.feats, metric, normalize)
        g_g = compute_distance_matrix(gallery.feats, gallery.feats, metric, normalize)
        distmat = torch.from_numpy(k_reciprocal(distmat, q_q, g_g))
    score = evaluate_single_gallery_shot if single_gallery_shot else evaluate_rank
    result = score(distmat, query.pids, gallery.pids, query.camids, gallery.camids)
    return Evaluation(result, query, gallery, distmat)
