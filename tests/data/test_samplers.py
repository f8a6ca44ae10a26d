"""Samplers on tiny sample lists whose batch counts can be worked out by hand."""

from __future__ import annotations

from collections import Counter

import pytest

from omnireid.data.datasets.base import Sample
from omnireid.data.samplers import DomainBalancedSampler, RandomIdentitySampler


def make_samples(images_per_pid: list[int], num_cams: int = 3) -> list[Sample]:
    """``images_per_pid[pid]`` images of each pid, cameras assigned round-robin."""
    samples = []
    for pid, n in enumerate(images_per_pid):
        for _ in range(n):
            samples.append(Sample(f"{len(samples)}.jpg", pid, len(samples) % num_cams))
    return samples


def batches(sampler, batch_size: int) -> list[list[int]]:
    order = list(sampler)
    assert len(order) == len(sampler) and len(order) % batch_size == 0
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# 1, 2, 4, 5, 8, 9 images -> max(1, n // 2) = 1, 1, 2, 2, 4, 4 groups of K=2: 14 groups.
SIZES = [1, 2, 4, 5, 8, 9]


def test_identity_batches_are_p_ids_by_k_images():
    samples = make_samples(SIZES)
    sampler = RandomIdentitySampler(samples, batch_size=4, num_instances=2)  # P = 2
    got = batches(sampler, 4)
    assert len(got) == 7  # 14 groups / P
    for batch in got:
        counts = Counter(samples[i].pid for i in batch)
        assert len(counts) == 2 and set(counts.values()) == {2}
    used = Counter(i for batch in got for i in batch)
    pid0 = [i for i, s in enumerate(samples) if s.pid == 0]
    assert used[pid0[0]] == 2  # one image, K = 2: drawn twice (with replacement)
    pid4 = [i for i, s in enumerate(samples) if s.pid == 4]
    assert all(used[i] == 1 for i in pid4)  # 8 images = 4 groups: every image once


def test_identity_epoch_length_with_a_dominant_identity():
    # groups 1, 1, 10 with P = 2: a batch needs two different ids, so only 2 batches exist.
    sampler = RandomIdentitySampler(make_samples([2, 2, 20]), batch_size=4, num_instances=2)
    assert len(sampler) == 8 and len(batches(sampler, 4)) == 2
    # P = 3 over 14 groups: B = 4 (sum(min(groups, 5)) = 14 < 15).
    assert len(RandomIdentitySampler(make_samples(SIZES), 6, 2)) == 24


def test_identity_order_follows_seed_and_epoch():
    samples = make_samples(SIZES)
    a = RandomIdentitySampler(samples, 4, 2, seed=3)
    b = RandomIdentitySampler(samples, 4, 2, seed=3)
    assert list(a) == list(b) == list(a)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(RandomIdentitySampler(samples, 4, 2, seed=4)) != list(a)


def test_ranks_split_one_plan():
    samples = make_samples(SIZES)
    whole = batches(RandomIdentitySampler(samples, 4, 2, seed=1), 4)
    ranks = [
        batches(RandomIdentitySampler(samples, 4, 2, seed=1, num_replicas=2, rank=r), 4)
        for r in range(2)
    ]
    assert [len(r) for r in ranks] == [3, 3]  # 7 batches -> 3 per rank
    assert ranks[0] == whole[0:6:2] and ranks[1] == whole[1:6:2]


@pytest.mark.parametrize(
    ("batch_size", "num_instances", "sizes"),
    [(6, 4, SIZES), (4, 0, SIZES), (8, 2, [4, 4, 4])],  # not a multiple; K = 0; 3 ids < P = 4
)
def test_identity_sampler_rejects(batch_size, num_instances, sizes):
    with pytest.raises(ValueError):
        RandomIdentitySampler(make_samples(sizes), batch_size, num_instances)


def test_domain_batches_hold_equal_counts_per_camera():
    samples = make_samples([10] * 5 + [2] * 5, num_cams=3)  # 60 images over 3 cameras
    sampler = DomainBalancedSampler(samples, batch_size=12, key="camid")
    got = batches(sampler, 12)
    assert len(got) == 5  # 60 // 12
    for batch in got:
        assert Counter(samples[i].camid for i in batch) == {0: 4, 1: 4, 2: 4}
        assert len(set(batch)) == 12


def test_domain_subset_per_batch_and_dsetid():
    samples = [Sample(f"{i}.jpg", i, 0, dsetid=i % 4) for i in range(40)]
    sampler = DomainBalancedSampler(samples, 6, key="dsetid", domains_per_batch=2, seed=5)
    got = batches(sampler, 6)
    assert len(got) == 6
    for batch in got:
        assert sorted(Counter(samples[i].dsetid for i in batch).values()) == [3, 3]
    assert len({frozenset(samples[i].dsetid for i in b) for b in got}) > 1
    sampler.set_epoch(1)
    assert batches(sampler, 6) != got


def test_domain_sampler_rejects():
    samples = [Sample(f"{i}.jpg", i, camid=0 if i < 20 else 1) for i in range(22)]
    with pytest.raises(ValueError, match="multiple"):
        DomainBalancedSampler(samples, 5, key="camid")  # 5 is not a multiple of 2 cameras
    with pytest.raises(ValueError, match="fewer than 4"):
        DomainBalancedSampler(samples, 8, key="camid")  # camera 1 has 2 images, a batch needs 4
    with pytest.raises(ValueError, match="key"):
        DomainBalancedSampler(samples, 4, key="pid")  # type: ignore[arg-type]
