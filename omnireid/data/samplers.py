"""Which samples form each training batch.

- Plain random order: ``torch.utils.data.RandomSampler(samples)`` (or ``DataLoader(...,
  shuffle=True)``; ``DistributedSampler`` under DDP). No class here.
- :class:`RandomIdentitySampler`: P identities x K images per batch, for the triplet loss.
- :class:`DomainBalancedSampler`: the same number of images from each of D cameras or datasets.

Both yield flat indices into ``samples`` in which every run of ``batch_size`` consecutive
indices is one batch: use ``DataLoader(dataset, batch_size=sampler.batch_size,
sampler=sampler)``. The order is a function of ``(seed, epoch)`` alone, so call
``set_epoch(epoch)`` at the start of every epoch, as with ``DistributedSampler`` (otherwise
every epoch repeats the first one's order). Under DDP give every rank the same ``seed`` plus
its ``rank`` and ``num_replicas``: all ranks draw the same epoch plan and rank ``r`` takes its
batches ``r, r + num_replicas, ...``, the same number on every rank.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch.utils.data import Sampler

from omnireid.data.datasets.base import Sample


class _EpochBatchSampler(Sampler[int]):
    """Shared machinery: a seeded per-epoch plan of whole batches, split across DDP ranks."""

    def __init__(
        self, batch_size: int, total_batches: int, seed: int, num_replicas: int, rank: int
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        if total_batches < num_replicas:
            raise ValueError(
                f"an epoch has {total_batches} batch(es) of {batch_size}, fewer than the "
                f"{num_replicas} replica(s)"
            )
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0
        self.num_replicas, self.rank = num_replicas, rank
        self.total_batches = total_batches  # over all ranks
        self.num_batches = total_batches // num_replicas  # on this rank

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next ``iter()`` draws."""
        self.epoch = epoch

    def _plan(self, generator: torch.Generator) -> list[list[int]]:
        """The epoch's ``total_batches`` batches of ``batch_size`` indices, for all ranks."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = self._plan(generator)[self.rank :: self.num_replicas][: self.num_batches]
        return iter([i for batch in batches for i in batch])

    def __len__(self) -> int:
        return self.num_batches * self.batch_size


def _group_indices(samples: Sequence[Sample], key: str) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        groups[getattr(sample, key)].append(i)
    return dict(sorted(groups.items()))


def _max_batches(counts: torch.Tensor, per_batch: int) -> int:
    """Largest B such that ``per_batch`` distinct groups can fill B batches.

    Possible iff ``sum(min(counts, B)) >= B * per_batch``; the slack of that inequality is
    concave in B and 0 at B = 0, so the feasible B form a prefix and bisection finds its end.
    """
    low, high = 0, int(counts.sum()) // per_batch
    while low < high:
        mid = (low + high + 1) // 2
        if int(counts.clamp(max=mid).sum()) >= mid * per_batch:
            low = mid
        else:
            high = mid - 1
    return low


class RandomIdentitySampler(_EpochBatchSampler):
    """P x K batches: ``P = batch_size // num_instances`` identities, K images each.

    One epoch: each identity's n images are shuffled and cut into ``max(1, n // K)`` groups of
    K (the ``n % K`` left over differ from epoch to epoch); an identity with ``n < K`` images
    gives one group of all n plus ``K - n`` drawn again at random, with replacement. The groups
    are dealt into batches of P groups from P distinct identities: each batch first takes the
    identities that must be in every remaining batch, then draws the rest with probability
    proportional to their groups not yet dealt. The number of batches is the
    largest B for which such a deal exists (each identity at most once per batch): normally
    ``G // P`` for G groups, fewer when a few identities own most of the groups; the groups
    left over are dropped at random. ``len(sampler) = B // num_replicas * batch_size``.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        batch_size: int,
        num_instances: int,
        *,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ValueError(
                f"batch_size {batch_size} must be a positive multiple of num_instances "
                f"{num_instances}"
            )
        self.num_instances = num_instances
        self.num_ids = batch_size // num_instances
        self.index_by_pid = _group_indices(samples, "pid")
        if len(self.index_by_pid) < self.num_ids:
            raise ValueError(
                f"a batch needs {self.num_ids} identities but the samples have only "
                f"{len(self.index_by_pid)}"
            )
        sizes = torch.tensor([len(idx) for idx in self.index_by_pid.values()])
        self.num_groups = (sizes // num_instances).clamp(min=1)
        total = _max_batches(self.num_groups, self.num_ids)
        super().__init__(batch_size, total, seed, num_replicas, rank)

    def _groups(self, indices: list[int], generator: torch.Generator) -> list[list[int]]:
        """One identity's groups of K sample indices for this epoch."""
        k, n = self.num_instances, len(indices)
        order = [indices[i] for i in torch.randperm(n, generator=generator).tolist()]
        if n < k:
            extra = torch.randint(n, (k - n,), generator=generator).tolist()
            return [order + [indices[i] for i in extra]]
        return [order[j : j + k] for j in range(0, n - n % k, k)]

    def _plan(self, generator: torch.Generator) -> list[list[int]]:
        num_batches, p = self.total_batches, self.num_ids
        groups = [self._groups(idx, generator) for idx in self.index_by_pid.values()]
        remaining = self.num_groups.clamp(max=num_batches)
        # Drop random groups beyond num_batches * P (an identity's groups are in random order).
        owners = torch.repeat_interleave(torch.arange(len(groups)), remaining)
        surplus = len(owners) - num_batches * p
        dropped = owners[torch.randperm(len(owners), generator=generator)[:surplus]]
        remaining = remaining - torch.bincount(dropped, minlength=len(groups))
        batches = []
        for left in range(num_batches, 0, -1):
            # Invariant: remaining <= left everywhere and sum(remaining) == left * P, so the
            # identities with `left` groups must be in this batch, and the rest can fill it.
            chosen = (remaining == left).nonzero().flatten()
            if len(chosen) < p:
                weights = (remaining * (remaining < left)).double()
                free = torch.multinomial(weights, p - len(chosen), generator=generator)
                chosen = torch.cat([chosen, free])
            remaining[chosen] -= 1
            batches.append([i for pid in chosen.tolist() for i in groups[pid].pop()])
        return batches


class DomainBalancedSampler(_EpochBatchSampler):
    """Batches with ``batch_size // D`` images from each of D distinct domains.

    A domain is a camera (``key="camid"``) or a source dataset (``key="dsetid"``). D is
    ``domains_per_batch``, by default every domain in ``samples``; when fewer, each batch draws
    its D domains uniformly at random. Within a domain, images come without replacement from a
    shuffled list that is reshuffled when fewer than ``batch_size // D`` remain, so a batch
    never repeats an image, small domains repeat within an epoch and large ones are seen in
    part. An epoch has ``len(samples) // batch_size`` batches.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        batch_size: int,
        key: Literal["camid", "dsetid"] = "camid",
        *,
        domains_per_batch: int | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if key not in ("camid", "dsetid"):
            raise ValueError(f"key must be 'camid' or 'dsetid', got {key!r}")
        self.index_by_domain = _group_indices(samples, key)
        num_domains = domains_per_batch or len(self.index_by_domain)
        if not 1 <= num_domains <= len(self.index_by_domain):
            raise ValueError(
                f"domains_per_batch {num_domains} is outside 1..{len(self.index_by_domain)}, "
                f"the number of {key} values"
            )
        if batch_size < num_domains or batch_size % num_domains:
            raise ValueError(f"batch_size {batch_size} is not a multiple of {num_domains} domains")
        self.num_domains, self.per_domain = num_domains, batch_size // num_domains
        small = {d: len(i) for d, i in self.index_by_domain.items() if len(i) < self.per_domain}
        if small:
            raise ValueError(f"{key} values with fewer than {self.per_domain} images: {small}")
        super().__init__(batch_size, len(samples) // batch_size, seed, num_replicas, rank)

    def _plan(self, generator: torch.Generator) -> list[list[int]]:
        pools = list(self.index_by_domain.values())
        queues: list[list[int]] = [[] for _ in pools]
        batches = []
        for _ in range(self.total_batches):
            batch = []
            for d in torch.randperm(len(pools), generator=generator)[: self.num_domains].tolist():
                if len(queues[d]) < self.per_domain:
                    perm = torch.randperm(len(pools[d]), generator=generator).tolist()
                    queues[d] = [pools[d][i] for i in perm]
                batch += queues[d][-self.per_domain :]
                del queues[d][-self.per_domain :]
            batches.append(batch)
        return batches
