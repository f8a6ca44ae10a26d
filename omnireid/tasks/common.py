"""What every task shares: the run a task hands to ``fit_from_config``, and the pieces of a
config that mean the same thing in every task (seed, augmentation, loader, schedule, the
``ModelSpec`` its checkpoints carry)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from omnireid.config import Config, config_to_dict
from omnireid.data.datasets import Sample
from omnireid.data.image_dataset import ArrayImageDataset, AttributeImageDataset, ImageDataset
from omnireid.data.samplers import RandomIdentitySampler
from omnireid.data.transforms import build_train_transform, compute_mean_std
from omnireid.engine.callbacks import HasSetEpoch
from omnireid.engine.distributed import rank, world_size
from omnireid.engine.loop import Callback, LossFn, Monitor
from omnireid.engine.optim import build_scheduler
from omnireid.errors import ConfigError
from omnireid.losses import ReIDLoss
from omnireid.models.spec import InitRecord, ModelSpec, Provenance, SourceWeights, Split
from omnireid.preprocessing import Preprocessing

log = logging.getLogger("omnireid.train")


@dataclass
class Run:
    """The parts of a training run a task builds from a config; ``fit_from_config`` adds the
    optimiser, schedule, resume and the standard callbacks, and trains.

    ``networks``: the networks frozen-base fine-tuning opens and freezes (default: the model).
    ``parameters``: what the optimiser trains with the config's settings (default: all of the
    model's); ``extra_groups`` are further parameter groups with their own settings.
    ``callbacks`` run after evaluation and before logging and checkpointing.
    ``shown``: record keys printed in each epoch's log line besides the loss.
    ``spec``: what every checkpoint of the run says the model is (``run_spec``).
    """

    model: nn.Module
    loader: DataLoader
    loss_fn: LossFn
    spec: ModelSpec
    monitor: Monitor | None = None
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None
    epoch_parts: list[HasSetEpoch] = field(default_factory=list)
    networks: list[nn.Module] | None = None
    parameters: list[nn.Parameter] | None = None
    extra_groups: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    shown: tuple[str, ...] = ("acc",)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_preprocessing(config: Config, train_paths: Sequence[str] = ()) -> Preprocessing:
    """The input size and normalisation the model is trained with (stored with every
    checkpoint): ImageNet's mean and std, or with ``data.normalization: dataset`` those of the
    training images (``train_paths``, read at the input size; ICCV'19 Table 12a)."""
    d = config.data
    if d.normalization == "imagenet":
        return Preprocessing(height=d.height, width=d.width)
    if not train_paths:
        raise ConfigError("data.normalization=dataset needs training images to measure")
    mean, std = compute_mean_std(train_paths, d.height, d.width)
    log.info("dataset statistics of %d images: mean %s std %s", len(train_paths), mean, std)
    return Preprocessing(height=d.height, width=d.width, mean=mean, std=std)


def model_options(config: Config) -> dict[str, Any]:
    """The builder options of ``config.model`` (stored with every checkpoint, so that
    ``load_for_inference`` builds the same network)."""
    options = dict(config.model.options)
    if config.model.bnneck:
        options["bnneck"] = True
    return options


def trained_on(config: Config) -> str:
    """What a run learns from, as its spec records it: an adaptation's target images (a folder
    or CSV), else ``data.dataset`` joined by its extra sources' names with "+"."""
    if config.train.task == "adapt" and config.adapt.images:
        return config.adapt.images
    extra = [entry.partition("=")[0].strip() for entry in config.data.extra_sources]
    return "+".join([config.data.dataset, *extra])


def run_spec(
    config: Config,
    pre: Preprocessing,
    task: str,
    *,
    num_classes: int | None,
    feature_dim: int,
    arch: str | None = None,
    options: dict[str, Any] | None = None,
    mutual: bool = False,
    labels: Sequence[str] = (),
    label_priors: Sequence[float] = (),
    init: InitRecord | None = None,
    adapted_from: SourceWeights | None = None,
    split: Split | None = None,
) -> ModelSpec:
    """The ``ModelSpec`` every checkpoint of a run stores (the checkpointer adds the epoch,
    its record and the weights' SHA-256): ``arch`` and ``options`` default to the config's
    (``model.arch``, ``model_options``); the whole config goes with it."""
    return ModelSpec(
        arch=config.model.arch if arch is None else arch,
        task=task,
        options=model_options(config) if options is None else dict(options),
        num_classes=num_classes,
        feature_dim=feature_dim,
        mutual=mutual,
        labels=tuple(labels),
        label_priors=tuple(label_priors),
        preprocessing=pre,
        provenance=Provenance(
            trained_on=trained_on(config), adapted_from=adapted_from, init=init, split=split
        ),
        config=config_to_dict(config),
    )


def reid_loss(config: Config) -> ReIDLoss:
    """The re-ID loss terms and weights ``config.loss`` asks for (one network's)."""
    loss = config.loss
    return ReIDLoss(
        label_smoothing=loss.label_smoothing,
        triplet_weight=loss.triplet_weight,
        triplet_margin=loss.triplet_margin,
        entropy_weight=loss.entropy_weight,
        triplet_no_positive=loss.triplet_no_positive,
    )


def train_transform(config: Config, pre: Preprocessing):
    """The training augmentation ``config.data`` asks for (any task), at ``pre``'s input size
    and normalised as ``pre`` says (its mean and std in units of its value range)."""
    d = config.data
    mean, std = pre.unit_mean_std
    return build_train_transform(
        pre.height,
        pre.width,
        flip=d.flip,
        random_crop=d.random_crop,
        random_patch=d.random_patch,
        random_erasing=d.random_erasing,
        color_jitter=d.color_jitter,
        mean=mean,
        std=std,
    )


def train_loader(
    config: Config,
    images: ImageDataset | AttributeImageDataset | ArrayImageDataset,
    identities: Sequence[Sample] | None = None,
) -> tuple[DataLoader, list[HasSetEpoch]]:
    """The training loader and what must hear of each new epoch (sampler, dataset).

    ``identities`` (the samples behind ``images``) enable P x K batches when
    ``data.num_instances`` is set. Under DDP each process takes its share of every epoch.
    Loader workers start afresh every epoch (not persistent): their seeds and augmentation
    state then derive from the main process's RNG at the epoch start, which checkpoints
    restore, so a resumed run draws the same augmentations as an uninterrupted one.
    """
    d = config.data
    common: dict[str, Any] = dict(num_workers=d.workers, persistent_workers=False)
    replicas: dict[str, Any] = {"num_replicas": world_size(), "rank": rank()}
    sampler: Any = None
    if d.num_instances:
        if identities is None:
            raise ConfigError("data.num_instances (P x K batches) applies to re-ID training only")
        try:
            sampler = RandomIdentitySampler(
                identities, d.batch_size, d.num_instances, seed=config.train.seed, **replicas
            )
        except ValueError as e:
            raise ConfigError(f"data.num_instances / data.batch_size: {e}") from e
        loader = DataLoader(images, batch_size=d.batch_size, sampler=sampler, **common)
        batches = len(sampler) // d.batch_size
    elif replicas["num_replicas"] > 1:
        sampler = DistributedSampler(images, seed=config.train.seed, drop_last=True, **replicas)
        loader = DataLoader(
            images, batch_size=d.batch_size, sampler=sampler, drop_last=True, **common
        )
        batches = len(sampler) // d.batch_size
    else:
        loader = DataLoader(images, batch_size=d.batch_size, shuffle=True, drop_last=True, **common)
        batches = len(images) // d.batch_size
    if batches < 1:
        raise ConfigError(
            f"data.batch_size {d.batch_size} is larger than what one process's share of the "
            f"training set fills ({len(images)} images): no batch would be trained; lower it"
        )
    parts = [
        cast(HasSetEpoch, p) for p in (sampler, images) if callable(getattr(p, "set_epoch", None))
    ]
    return loader, parts


def scheduler(config: Config, optimizer: torch.optim.Optimizer) -> Any:
    """The learning-rate schedule ``config.optim`` asks for, stepped once per epoch."""
    o = config.optim
    try:
        return build_scheduler(
            optimizer,
            o.schedule,
            max_epoch=o.max_epoch,
            milestones=o.milestones,
            gamma=o.gamma,
            warmup_epochs=o.warmup_epochs,
        )
    except ValueError as e:
        raise ConfigError(f"optim: {e}") from e
