"""DBSCAN, pseudo-labels and cluster statistics on hand-made distances and features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnireid.adapt.clustering import (
    centroids,
    cluster_statistics,
    dbscan,
    pseudo_labels,
    untrainable,
)


def line_distances(positions: list[float]) -> np.ndarray:
    x = np.asarray(positions, dtype=np.float64)
    return np.abs(x[:, None] - x[None, :])


def test_dbscan_groups_dense_runs_and_leaves_isolated_points_out():
    # two runs of three points 0.1 apart, far from each other, and one point on its own
    dist = line_distances([0.0, 0.1, 0.2, 5.0, 5.1, 5.2, 10.0])
    labels = dbscan(dist, eps=0.15, min_samples=2)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, -1]


def test_dbscan_border_points_join_but_do_not_extend_a_cluster():
    # with min_samples 3 (the point itself counted), 0.1 and 0.2 are core points (3 points
    # within 0.15 each); 0.0 and 0.3 are border points: they join, but 0.45 (0.15 from the
    # border point 0.3 only) is noise, as is everything when eps is too small
    dist = line_distances([0.0, 0.1, 0.2, 0.3, 0.45])
    assert dbscan(dist, eps=0.15, min_samples=3).tolist() == [0, 0, 0, 0, -1]
    assert dbscan(dist, eps=0.05, min_samples=2).tolist() == [-1] * 5


def test_dbscan_border_point_goes_to_its_nearest_core_cluster():
    # two tight runs of 5 core points; 1.035 has one neighbour in the first (0.04, 0.995 away)
    # and two in the second (2.02 at 0.985, 2.03 at 0.995): 4 points < min_samples 5, so it is
    # a border point of both, and joins the second, whose core point is nearest
    first = [0.0, 0.01, 0.02, 0.03, 0.04]
    second = [2.02, 2.03, 2.04, 2.05, 2.06]
    labels = dbscan(line_distances([*first, 1.035, *second]), eps=1.0, min_samples=5)
    assert labels.tolist() == [0] * 5 + [1] * 6


def test_dbscan_agrees_with_scikit_learn_on_core_points_and_noise():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(c, 0.3, size=(25, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    points = np.concatenate([points, rng.uniform(-2, 5, size=(15, 2))])
    dist = np.linalg.norm(points[:, None] - points[None], axis=2)
    ours = dbscan(dist, eps=0.5, min_samples=5)
    reference = sklearn_cluster.DBSCAN(eps=0.5, min_samples=5, metric="precomputed").fit(dist)
    assert np.array_equal(ours == -1, reference.labels_ == -1)
    core = reference.core_sample_indices_
    # the same partition of the core points (cluster numbers may differ)
    pairs = {(a, b) for a, b in zip(ours[core], reference.labels_[core], strict=True)}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_pseudo_labels_find_the_identities_of_well_separated_features():
    # 5 identities x 6 images: each a small perturbation of its identity's direction
    torch.manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(5, 64), dim=1)
    features = centres.repeat_interleave(6, 0) + 0.05 * torch.randn(30, 64)
    labels = pseudo_labels(features, eps=0.6, min_samples=3, k1=6, k2=2)
    truth = np.repeat(np.arange(5), 6)
    stats = cluster_statistics(labels, truth)
    assert stats["clusters"] == 5 and stats["outliers"] == 0
    assert stats["purity"] == 100 and stats["ids_found"] == 100


def test_centroids_are_normalised_means_of_normalised_members():
    features = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [5.0, 5.0]])
    labels = np.array([0, 0, -1, 1])
    c = centroids(features, labels)
    half = 0.5**0.5
    assert torch.allclose(c, torch.tensor([[half, half], [half, half]]))
    one = centroids(torch.tensor([[3.0, 4.0]]), np.array([0]))
    assert torch.allclose(one, torch.tensor([[0.6, 0.8]]))


def test_cluster_statistics_worked_by_hand():
    labels = np.array([0, 0, 0, 1, 1, -1, -1, -1])
    pids = np.array([7, 7, 8, 9, 9, 7, 8, 10])
    stats = cluster_statistics(labels, pids)
    # cluster 0: majority 7 (2 of 3); cluster 1: 9 (2 of 2) -> 4 of 5 clustered images
    assert stats == {"clusters": 2.0, "outliers": 3 / 8, "purity": 80.0, "ids_found": 50.0}
    assert cluster_statistics(np.full(3, -1)) == {"clusters": 0.0, "outliers": 1.0}


def test_rounds_that_give_nothing_to_train_on_are_named():
    said = untrainable(np.array([-1, -1, -1]))
    assert said is not None and "no cluster among the 3 target images" in said
    said = untrainable(np.array([0, 0, 0, -1]))
    assert said is not None and "put 3 of the 4 target images in one cluster" in said
    said = untrainable(np.array([0, 1, 2]))
    assert said is not None and "3 clusters of one image each" in said
    assert untrainable(np.array([0, 0, 1, -1])) is None  # two clusters, one a pair: trainable
