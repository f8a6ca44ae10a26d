"""One adaptation round per epoch: extract, cluster, relabel, reset the memory, then train.

``ClusterRound`` is the callback that makes ``engine.loop.fit`` a clustering-based
self-training loop: at every epoch's start it extracts the target images' features with the
current model, clusters them (``clustering.pseudo_labels``), gives the clustered images their
pseudo-identities (outliers are left out of the round), loads the cluster centroids into the
memory, and points the P x K sampler at the new clusters. A round whose clusters give nothing
to train on (``clustering.untrainable``: none, one, or only single images) stops the run with
a ``TrainingError`` saying so; the rounds before it keep their checkpoints. Everything a round
uses is a function of the model and the epoch, so a resumed run replays the same rounds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from omnireid.adapt.adabn import adapt_batchnorm
from omnireid.adapt.clustering import centroids, cluster_statistics, pseudo_labels, untrainable
from omnireid.adapt.memory import ClusterMemory
from omnireid.data.datasets.base import Sample
from omnireid.data.image_dataset import ImageDataset
from omnireid.engine.distributed import unwrap
from omnireid.engine.loop import Callback, Loop
from omnireid.errors import TrainingError
from omnireid.evaluation.features import extract_features
from omnireid.models.fused import optimize_for_inference

log = logging.getLogger("omnireid.train")


class PseudoLabelDataset(ImageDataset):
    """An ``ImageDataset`` whose items carry the current round's pseudo-identity as pid."""

    def __init__(self, samples: Sequence[Sample], transform, cache: bool = False) -> None:
        super().__init__(samples, transform, cache=cache)
        self.labels = np.full(len(self.samples), -1, dtype=np.int64)

    def __getitem__(self, index: int):
        item = super().__getitem__(index)
        assert item is not None  # built without skip_unreadable
        image, _, camid, i = item
        return image, int(self.labels[index]), camid, i


class PseudoIdentitySampler(Sampler[int]):
    """``batches`` P x K batches per round over the clustered images: P clusters drawn at
    random, K images of each (drawn again when a cluster has fewer); with ``camera_balanced``
    a cluster's K images come from its cameras in turn. Seeded by (seed, epoch)."""

    def __init__(
        self,
        batch_size: int,
        num_instances: int,
        batches: int,
        *,
        seed: int = 0,
        camera_balanced: bool = False,
    ) -> None:
        if num_instances < 1 or batch_size % num_instances:
            raise ValueError(f"batch_size {batch_size} must be a multiple of K={num_instances}")
        self.p, self.k, self.batches = batch_size // num_instances, num_instances, batches
        self.seed, self.epoch, self.camera_balanced = seed, 0, camera_balanced
        self.members: list[np.ndarray] = []
        self.camids = np.zeros(0, dtype=np.int64)

    def set_clusters(self, labels: np.ndarray, camids: np.ndarray) -> None:
        self.members = [np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1)]
        self.camids = camids

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _draw(self, members: np.ndarray, rng: np.random.Generator) -> list[int]:
        if not self.camera_balanced:
            return rng.choice(members, self.k, replace=len(members) < self.k).tolist()
        by_camera = [rng.permutation(members[self.camids[members] == c])
                     for c in rng.permutation(np.unique(self.camids[members]))]  # fmt: skip
        order = [m for rank in range(max(map(len, by_camera))) for cam in by_camera
                 for m in cam[rank : rank + 1]]  # fmt: skip
        return [int(order[i % len(order)]) for i in range(self.k)]

    def __iter__(self) -> Iterator[int]:
        if not self.members:
            raise RuntimeError("no clusters yet: the round has not run")
        rng = np.random.default_rng([self.seed, self.epoch])
        p = min(self.p, len(self.members))
        for _ in range(self.batches):
            for cluster in rng.choice(len(self.members), p, replace=False):
                yield from self._draw(self.members[cluster], rng)

    def __len__(self) -> int:
        return self.batches * min(self.p, max(len(self.members), 1)) * self.k


class ClusterRound(Callback):
    """The round before each epoch (module docstring); ``adabn_batches`` re-estimates the
    BatchNorm statistics on the target images before the first round (AdaBN)."""

    def __init__(
        self,
        images: PseudoLabelDataset,
        sampler: PseudoIdentitySampler,
        memory: ClusterMemory,
        eval_transform: Callable,
        *,
        true_pids: np.ndarray | None = None,
        adabn_batches: Callable[[], Iterable[torch.Tensor]] | None = None,
        device: str = "cpu",
        cluster_options: dict | None = None,
    ) -> None:
        self.images, self.sampler, self.memory = images, sampler, memory
        self.eval_transform, self.true_pids, self.device = eval_transform, true_pids, device
        self.adabn_batches, self.options = adabn_batches, dict(cluster_options or {})
        self.stats: dict[str, float] = {}

    def on_fit_start(self, loop: Loop) -> None:
        if loop.start_epoch == 0 and self.adabn_batches is not None:
            seen = adapt_batchnorm(unwrap(loop.model), self.adabn_batches(), self.device)
            log.info("AdaBN: BatchNorm statistics re-estimated on %d target images", seen)

    @torch.no_grad()
    def on_epoch_start(self, loop: Loop) -> None:
        model: nn.Module = unwrap(loop.model)
        modes = {m: m.training for m in model.modules()}  # e.g. frozen layers stay frozen
        # on CPU a fused copy (models.fused) gives the same features ~3x faster
        fast = optimize_for_inference(model) if torch.device(self.device).type == "cpu" else model
        feats = extract_features(
            fast,
            self.images.samples,
            self.eval_transform,
            device=self.device,
            desc="target",
            batch_size=64,
            dataset=self.images.with_transform(self.eval_transform),
        ).feats
        for m, training in modes.items():
            m.train(training)
        labels = pseudo_labels(feats, **self.options)
        problem = untrainable(labels)
        if problem is not None:  # training on it would change nothing and report success
            raise TrainingError(f"round {loop.epoch + 1}: {problem}")
        camids = np.array([s.camid for s in self.images.samples], dtype=np.int64)
        self.images.labels[:] = labels
        self.sampler.set_clusters(labels, camids)
        self.memory.reset(centroids(feats, labels))
        self.stats = cluster_statistics(labels, self.true_pids)
        described = "  ".join(f"{k} {v:.4g}" for k, v in self.stats.items())
        log.info("round %d: %s", loop.epoch + 1, described)

    def on_epoch_end(self, loop: Loop) -> None:
        loop.record.update(self.stats)
