"""The adaptation as parts of a training loop, and as one Python call on a list of images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from omnireid.adapt.memory import ClusterMemory
from omnireid.adapt.rounds import ClusterRound, PseudoIdentitySampler, PseudoLabelDataset
from omnireid.data.datasets.base import Sample
from omnireid.data.images import parse_market_name
from omnireid.data.transforms import build_train_transform, transform_for
from omnireid.engine.callbacks import Checkpointer, EpochLog
from omnireid.engine.loop import fit
from omnireid.engine.optim import build_optimizer
from omnireid.preprocessing import Preprocessing
from omnireid.progress import progress


@dataclass
class Adaptation:
    """What ``engine.loop.fit`` needs to self-train on target images: the loader (P x K over
    the round's pseudo-identities), the loss (the cluster memory), its statistic, the round
    callback, and the parts that hear of each epoch."""

    loader: DataLoader
    memory: ClusterMemory
    rounds: ClusterRound
    parts: list


def build_adaptation(
    samples: Sequence[Sample],
    train_transform: Callable,
    eval_transform: Callable,
    *,
    batch_size: int = 64,
    num_instances: int = 4,
    batches: int = 100,
    temperature: float = 0.05,
    momentum: float = 0.1,
    eps: float = 0.5,
    min_samples: int = 4,
    k1: int = 30,
    k2: int = 6,
    camera_balanced: bool = False,
    adabn: bool = True,
    true_pids: np.ndarray | None = None,
    seed: int = 0,
    workers: int = 0,
    cache: bool = False,
    device: str = "cpu",
) -> Adaptation:
    """The parts of an adaptation run over ``samples`` (their pids are ignored; pass the true
    ones as ``true_pids`` only to have cluster purity reported)."""
    images = PseudoLabelDataset(samples, train_transform, cache=cache)
    if cache:
        images.preload()
    sampler = PseudoIdentitySampler(
        batch_size, num_instances, batches, seed=seed, camera_balanced=camera_balanced
    )
    loader = DataLoader(images, batch_size=batch_size, sampler=sampler, num_workers=workers)
    memory = ClusterMemory(temperature, momentum)
    plain = images.with_transform(eval_transform)

    def adabn_batches():
        loader = DataLoader(plain, batch_size=64, num_workers=workers)
        return (x for x, *_ in progress(loader, desc="AdaBN", unit="batch"))

    rounds = ClusterRound(
        images,
        sampler,
        memory,
        eval_transform,
        true_pids=true_pids,
        adabn_batches=adabn_batches if adabn else None,
        device=device,
        cluster_options=dict(eps=eps, min_samples=min_samples, k1=k1, k2=k2),
    )
    return Adaptation(loader, memory, rounds, [sampler, images])


def samples_of(images: Sequence[str | Path], camids: Sequence[int] | None = None) -> list[Sample]:
    """Unlabelled samples of image files; camera ids given, from Market-style names, or 0."""
    out = []
    for i, path in enumerate(images):
        parsed = parse_market_name(path)
        cam = camids[i] if camids is not None else (parsed[1] if parsed else 0)
        out.append(Sample(str(path), -1, int(cam)))
    return out


def adapt(
    model: nn.Module,
    images: Sequence[str | Path],
    *,
    epochs: int = 20,
    camids: Sequence[int] | None = None,
    preprocessing: Preprocessing | None = None,
    lr: float = 3.5e-4,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    **options,
) -> nn.Module:
    """Adapt ``model`` (an OSNet, trained elsewhere) to the people in ``images``, a site's
    unlabelled crops: ``epochs`` rounds of clustering and contrastive training (Adam ``lr``).
    Camera ids come from ``camids``, Market-style file names, or default to one camera.
    ``out_dir`` keeps a checkpoint per round and ``log.jsonl`` (no resume: use ``omnireid
    adapt`` for that). ``options`` go to ``build_adaptation``. Returns the model, in eval mode.
    """
    pre = preprocessing or Preprocessing()
    augment = build_train_transform(pre.height, pre.width, mean=pre.mean, std=pre.std)
    parts = build_adaptation(
        samples_of(images, camids), augment, transform_for(pre), device=device, **options
    )
    model.to(device).train()
    optimizer = build_optimizer(model, "adam", lr)
    callbacks = [parts.rounds]
    if out_dir is not None:
        callbacks += [EpochLog(out_dir), Checkpointer(out_dir, optimizer=optimizer)]
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    fit(
        model,
        parts.loader,
        optimizer,
        parts.memory,
        epochs=epochs,
        callbacks=callbacks,
        device=device,
        monitor=parts.memory.accuracy,
    )
    return model.eval()


__all__ = ["Adaptation", "adapt", "build_adaptation", "samples_of"]
