"""The adaptation as parts of a training loop, and as one Python call on a list of images.

``adapt(model, images)`` follows the same recipe as ``omnireid adapt`` (``recipes.ADAPT``:
optimiser, schedule, batches, augmentation, rounds) and starts from the model's own spec
(``model.spec``, attached by ``models.load_for_inference``): its input size and normalisation,
unless told otherwise, with a warning. Its checkpoints carry the source's spec, recording what
it was adapted from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
from omnireid.engine.optim import build_optimizer, build_scheduler
from omnireid.engine.schedules import LRSchedule
from omnireid.errors import UsageError
from omnireid.models.spec import ModelSpec, Provenance, SourceWeights
from omnireid.preprocessing import Preprocessing
from omnireid.progress import progress
from omnireid.recipes import ADAPT, AdaptRecipe

log = logging.getLogger(__name__)


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
    if not len(images):
        raise UsageError("no images to adapt to")
    if camids is not None and len(camids) != len(images):
        raise UsageError(f"{len(camids)} camera ids for {len(images)} images: give one per image")
    out = []
    for i, path in enumerate(images):
        parsed = parse_market_name(path)
        cam = camids[i] if camids is not None else (parsed[1] if parsed else 0)
        out.append(Sample(str(path), -1, int(cam)))
    return out


def source_preprocessing(
    spec: ModelSpec | None, preprocessing: Preprocessing | None, source: object = "the model"
) -> Preprocessing:
    """What to adapt with: ``preprocessing`` when given (a warning when it contradicts the
    size or normalisation the model was trained with), else the model's spec's, else the
    default (256x128, ImageNet statistics)."""
    stored = spec.preprocessing if spec is not None else None
    if preprocessing is None:
        return stored or Preprocessing()
    if stored is not None and preprocessing != stored:
        differs = [
            name
            for name in ("input_size", "mean", "std", "value_range", "output_norm")
            if getattr(preprocessing, name) != getattr(stored, name)
        ]
        log.warning(
            "%s was trained with %s %s; adapting with %s as asked",
            source,
            ", ".join(n.removeprefix("input_") for n in differs),
            "/".join(str(getattr(stored, n)) for n in differs),
            "/".join(str(getattr(preprocessing, n)) for n in differs),
        )
    return preprocessing


def adapted_spec(spec: ModelSpec, pre: Preprocessing, images: Sequence[str | Path]) -> ModelSpec:
    """The spec of a model adapted from ``spec``'s on ``images`` with ``pre``."""
    try:
        folder = os.path.commonpath([str(Path(p).resolve()) for p in images])
    except ValueError:  # no images, or paths on different drives
        folder = ""
    origin = SourceWeights(path="", sha256=spec.weights_sha256)
    return replace(
        spec,
        preprocessing=pre,
        provenance=Provenance(trained_on=folder, adapted_from=origin),
        weights_sha256="",
        epoch=None,
        record={},
        config=None,
    )


def adapt(
    model: nn.Module,
    images: Sequence[str | Path],
    *,
    epochs: int | None = None,
    camids: Sequence[int] | None = None,
    preprocessing: Preprocessing | None = None,
    lr: float | None = None,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    recipe: AdaptRecipe = ADAPT,
    **options,
) -> nn.Module:
    """Adapt ``model`` (an OSNet, trained elsewhere) to the people in ``images``, a site's
    unlabelled crops: ``epochs`` rounds (default: the recipe's) of clustering and contrastive
    training, as ``omnireid adapt`` does (``recipe``: optimiser, ``lr``, cosine schedule,
    P x K batches, augmentation). The input size and normalisation are ``model.spec``'s unless
    ``preprocessing`` says otherwise (with a warning). Camera ids come from ``camids``,
    Market-style file names, or default to one camera. ``out_dir`` keeps a checkpoint per
    round (with the adapted model's spec when the model has one) and ``log.jsonl`` (no resume:
    use ``omnireid adapt`` for that). ``options`` go to ``build_adaptation``. Returns the
    model, in eval mode.
    """
    spec: ModelSpec | None = getattr(model, "spec", None)
    pre = source_preprocessing(spec, preprocessing)
    epochs = recipe.epochs if epochs is None else epochs
    mean, std = pre.unit_mean_std
    augment = build_train_transform(
        pre.height,
        pre.width,
        flip=recipe.flip,
        random_crop=recipe.random_crop,
        random_erasing=recipe.random_erasing,
        mean=mean,
        std=std,
    )
    sizes = {"batch_size": recipe.batch_size, "num_instances": recipe.num_instances}
    parts = build_adaptation(
        samples_of(images, camids),
        augment,
        transform_for(pre),
        device=device,
        **{**sizes, **options},
    )
    model.to(device).train()
    optimizer = build_optimizer(
        model,
        recipe.optimizer,  # type: ignore[arg-type]
        recipe.lr if lr is None else lr,
        weight_decay=recipe.weight_decay,
    )
    schedule = build_scheduler(optimizer, recipe.schedule, max_epoch=epochs)  # type: ignore[arg-type]
    callbacks = [LRSchedule(schedule), parts.rounds]
    adapted = None if spec is None else adapted_spec(spec, pre, images)
    if out_dir is not None:
        callbacks += [
            EpochLog(out_dir),
            Checkpointer(out_dir, optimizer=optimizer, scheduler=schedule, spec=adapted),
        ]
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
    if adapted is not None:
        # torch types Module.__setattr__'s value as Tensor | Module; any value is an attribute
        model.spec = adapted  # type: ignore[assignment]
    return model.eval()


__all__ = ["Adaptation", "adapt", "adapted_spec", "build_adaptation", "samples_of"]
