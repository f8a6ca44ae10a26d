"""The P x K sampler over pseudo-identities."""

from __future__ import annotations

import numpy as np
import pytest

from omnireid.adapt.rounds import PseudoIdentitySampler


def batches_of(sampler: PseudoIdentitySampler, size: int) -> list[list[int]]:
    order = list(sampler)
    assert len(order) == len(sampler)
    return [order[i : i + size] for i in range(0, len(order), size)]


def test_each_batch_has_p_distinct_clusters_of_k_members_and_no_outliers():
    labels = np.array([0, 0, 0, 1, 1, -1, 2, 2, 2, 2, 3, -1])
    sampler = PseudoIdentitySampler(batch_size=6, num_instances=2, batches=5, seed=1)
    sampler.set_clusters(labels, np.zeros(len(labels), dtype=np.int64))
    for batch in batches_of(sampler, 6):
        clusters = [labels[i] for i in batch]
        assert -1 not in clusters
        groups = [clusters[j : j + 2] for j in range(0, 6, 2)]
        assert all(g[0] == g[1] for g in groups)  # K=2 of one cluster
        assert len({g[0] for g in groups}) == 3  # P=3 distinct clusters


def test_a_small_cluster_is_drawn_again_and_p_is_capped_by_the_clusters():
    labels = np.array([0, 1, 1, 1])
    sampler = PseudoIdentitySampler(batch_size=8, num_instances=4, batches=2, seed=0)
    sampler.set_clusters(labels, np.zeros(4, dtype=np.int64))
    for batch in batches_of(sampler, 8):
        assert sorted(labels[batch].tolist()) == [0] * 4 + [1] * 4


def test_camera_balanced_takes_a_clusters_images_from_its_cameras_in_turn():
    # cluster 0: three images from camera 0, one from camera 1
    labels = np.array([0, 0, 0, 0])
    camids = np.array([0, 0, 0, 1])
    plain = PseudoIdentitySampler(4, 2, batches=50, seed=0)
    balanced = PseudoIdentitySampler(4, 2, batches=50, seed=0, camera_balanced=True)
    for s in (plain, balanced):
        s.set_clusters(labels, camids)
    # balanced: every pair of K=2 holds one image of each camera
    assert all(sorted(camids[b].tolist()) == [0, 1] for b in batches_of(balanced, 2))
    # plain draws ignore cameras: some pairs come from camera 0 only
    assert any(camids[b].tolist() == [0, 0] for b in batches_of(plain, 2))


def test_rounds_are_reproducible_per_epoch_and_differ_between_epochs():
    labels = np.repeat(np.arange(10), 4)
    sampler = PseudoIdentitySampler(8, 4, batches=3, seed=5)
    sampler.set_clusters(labels, np.zeros(40, dtype=np.int64))
    sampler.set_epoch(2)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(3)
    assert list(sampler) != first


def test_bad_batch_shapes_and_a_sampler_without_clusters_are_refused():
    with pytest.raises(ValueError, match="multiple"):
        PseudoIdentitySampler(10, 4, batches=1)
    with pytest.raises(RuntimeError, match="no clusters"):
        list(PseudoIdentitySampler(8, 4, batches=1))
