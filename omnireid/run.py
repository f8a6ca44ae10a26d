"""The edge between configuration and library: a validated ``Config`` becomes builder calls."""

from __future__ import annotations

import json
import random
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from omnireid.config import Config, config_to_dict
from omnireid.data.dataset import ImageDataset
from omnireid.data.datasets import ReIDDataset, combine_sources, load_dataset
from omnireid.data.samplers import RandomIdentitySampler
from omnireid.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_eval_transform,
    build_train_transform,
)
from omnireid.deploy.fast import optimize_for_inference
from omnireid.engine.distributed import init_distributed, rank, world_size, wrap
from omnireid.engine.mutual import MutualPair, mutual_losses
from omnireid.engine.optim import build_optimizer, build_scheduler
from omnireid.engine.train import fit, training_layout
from omnireid.evaluation.evaluate import evaluate_model
from omnireid.losses import compute_losses
from omnireid.models import build
from omnireid.models.weights import load_weights


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_datasets(config: Config) -> tuple[ReIDDataset, ReIDDataset]:
    """The training data (one source, or several combined) and the data to test on.

    ``data.extra_sources`` ("name=root" entries) join ``data.dataset`` in one classifier with
    their identities and cameras kept apart; ``data.target`` (with ``data.target_root``) tests
    on another dataset's query/gallery: the cross-domain protocol.
    """
    d = config.data
    dataset = load_dataset(d.dataset, d.root)
    if d.extra_sources:
        sources = [dataset]
        for entry in d.extra_sources:
            name, sep, root = entry.partition("=")
            if not sep or not name or not root:
                raise ValueError(f"data.extra_sources: expected 'name=root', got {entry!r}")
            sources.append(load_dataset(name.strip(), root.strip()))
        dataset = combine_sources(sources)
    if d.target is None:
        return dataset, dataset
    if d.target_root is None:
        raise ValueError("data.target needs data.target_root (where that dataset lives)")
    return dataset, load_dataset(d.target, d.target_root)


def preprocessing_meta(config: Config) -> dict[str, Any]:
    """Input size, mean and std, stored with every checkpoint (``FeatureExtractor.from_checkpoint``
    reads them back)."""
    return {
        "height": config.data.height,
        "width": config.data.width,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


def make_train_transform(config: Config):
    """The training augmentation ``config.data`` asks for (any task)."""
    d = config.data
    return build_train_transform(
        d.height,
        d.width,
        flip=d.flip,
        random_crop=d.random_crop,
        random_patch=d.random_patch,
        random_erasing=d.random_erasing,
        color_jitter=d.color_jitter,
    )


def make_train_loader(config: Config, dataset: ReIDDataset) -> DataLoader:
    d = config.data
    images = ImageDataset(dataset.train, make_train_transform(config), cache=d.cache_images)
    if d.cache_images:
        images.preload(progress=rank() == 0)
    # Workers are started afresh every epoch (not persistent): each epoch's worker seeds and
    # augmentation state then derive from the main process's RNG at the epoch start, which the
    # checkpoint restores, so a resumed run draws the same augmentations as an uninterrupted one.
    common = dict(num_workers=d.workers, persistent_workers=False)
    replicas = {"num_replicas": world_size(), "rank": rank()}
    if d.num_instances:
        sampler = RandomIdentitySampler(
            dataset.train, d.batch_size, d.num_instances, seed=config.train.seed, **replicas
        )
        return DataLoader(images, batch_size=d.batch_size, sampler=sampler, **common)
    if replicas["num_replicas"] > 1:  # each process takes its share of every epoch
        sampler = DistributedSampler(images, seed=config.train.seed, drop_last=True, **replicas)
        return DataLoader(
            images, batch_size=d.batch_size, sampler=sampler, drop_last=True, **common
        )
    return DataLoader(images, batch_size=d.batch_size, shuffle=True, drop_last=True, **common)


def make_evaluator(config: Config, dataset: ReIDDataset):
    """Metrics of the model (for a MutualPair: the ensemble, and model 1 alone as ``model1_*``)."""
    transform = build_eval_transform(config.data.height, config.data.width)
    device = config.train.device

    def fast(model: nn.Module) -> nn.Module:
        return optimize_for_inference(model) if device == "cpu" else model.eval()

    def score(model: nn.Module) -> dict[str, float]:
        ev = evaluate_model(model, dataset, transform, device=device, progress=False)
        return ev.result.as_dict()

    def evaluate(model: nn.Module) -> dict[str, float]:
        if isinstance(model, MutualPair):
            pair = MutualPair(fast(model.model1), fast(model.model2)).eval()
            metrics = score(pair)
            pair.use = "model1"
            return metrics | {f"model1_{k}": v for k, v in score(pair).items()}
        return score(fast(model))

    return evaluate


def train_from_config(config: Config) -> list[dict[str, Any]]:
    """Train as ``config`` says; returns the per-epoch records (the last has the metrics)."""
    init_distributed(config.train.device)
    seed_everything(config.train.seed)
    out_dir = Path(config.train.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rank() == 0:
        (out_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    if config.train.task == "attributes":
        from omnireid.run_attributes import attribute_task

        return fit_from_config(config, *attribute_task(config))
    if config.train.task != "reid":
        raise ValueError(f"train.task must be 'reid' or 'attributes', got {config.train.task!r}")
    dataset, test_dataset = load_datasets(config)
    model = build(config.model.arch, num_classes=dataset.num_train_pids)
    if config.model.weights:
        load_weights(model, config.model.weights)
    if config.model.mutual:  # the second network starts from the same weights file, if any
        second = build(config.model.arch, num_classes=dataset.num_train_pids)
        if config.model.weights:
            load_weights(second, config.model.weights)
        model = MutualPair(model, second)
    loss = config.loss
    loss_options = {
        "label_smoothing": loss.label_smoothing,
        "triplet_weight": loss.triplet_weight,
        "triplet_margin": loss.triplet_margin,
        "entropy_weight": loss.entropy_weight,
    }
    if config.model.mutual:
        loss_fn = partial(mutual_losses, mutual_weight=loss.mutual_weight, **loss_options)
    else:
        loss_fn = partial(compute_losses, **loss_options)
    meta = {
        "arch": config.model.arch,
        "mutual": config.model.mutual,
        "num_classes": dataset.num_train_pids,
        "preprocessing": preprocessing_meta(config),
        "config": config_to_dict(config),
    }
    return fit_from_config(
        config,
        model,
        make_train_loader(config, dataset),
        loss_fn,
        make_evaluator(config, test_dataset),
        meta,
    )


def make_scheduler(config: Config, optimizer: torch.optim.Optimizer) -> Any:
    """The learning-rate schedule ``config.optim`` asks for, stepped once per epoch."""
    o = config.optim
    return build_scheduler(
        optimizer,
        o.schedule,
        max_epoch=o.max_epoch,
        milestones=o.milestones,
        gamma=o.gamma,
        warmup_epochs=o.warmup_epochs,
    )


def fit_from_config(
    config: Config,
    model: nn.Module,
    loader: DataLoader,
    loss_fn: Any,
    evaluate: Any,
    meta: dict[str, Any],
) -> list[dict[str, Any]]:
    """Optimiser, schedule and ``fit`` as ``config`` says, for any task's model/loader/loss."""
    out_dir = Path(config.train.out_dir)
    model.to(config.train.device)
    training_layout(model, config.train.channels_last)
    model = wrap(model, config.train.device, find_unused_parameters=config.optim.fixbase_epochs > 0)
    o = config.optim
    optimizer = build_optimizer(
        model, o.name, o.lr, weight_decay=o.weight_decay, momentum=o.momentum
    )
    scheduler = make_scheduler(config, optimizer)
    records = fit(
        model,
        loader,
        optimizer,
        scheduler,
        loss_fn,
        max_epoch=o.max_epoch,
        out_dir=out_dir,
        fixbase_epochs=o.fixbase_epochs,
        open_layer_names=o.open_layers,
        resume=config.train.resume,
        device=config.train.device,
        max_grad_norm=o.max_grad_norm,
        evaluate=evaluate,
        eval_every=config.train.eval_every or o.max_epoch,
        amp=config.train.amp,
        tensorboard=config.train.tensorboard,
        meta=meta,
        keep=config.train.keep,
        channels_last=config.train.channels_last,
    )
    if records and rank() == 0:
        (out_dir / "metrics.json").write_text(json.dumps(records[-1], indent=2))
    return records
