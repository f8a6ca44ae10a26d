"""The re-ID task (``train.task: reid``): identity classification with the papers' losses.

Builds, from a validated config: the training data (one source, several combined, and a
target to test on), the model (one network or a deep-mutual-learning pair), the loss terms,
the training statistics, and the evaluator that reports CMC/mAP/mINP under ``config.test``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from omnireid.config import Config
from omnireid.data.datasets import MULTI_SPLIT, ReIDDataset, combine_sources, load_dataset
from omnireid.data.image_dataset import ImageDataset
from omnireid.engine.callbacks import CollapseDetector
from omnireid.engine.distributed import rank
from omnireid.engine.loop import Callback
from omnireid.engine.schedules import Ramp
from omnireid.errors import ConfigError, DatasetLayoutError, UsageError
from omnireid.evaluation.evaluate import evaluate_model
from omnireid.evaluation.features import Embedder
from omnireid.losses import embedding_statistics, mutual_losses
from omnireid.models import build
from omnireid.models.fused import optimize_for_inference
from omnireid.models.mutual import MutualPair
from omnireid.models.osnet import OSNet
from omnireid.models.spec import InitRecord, Split
from omnireid.models.weights import init_from_weights
from omnireid.preprocessing import Preprocessing
from omnireid.tasks.common import (
    Run,
    model_options,
    reid_loss,
    run_spec,
    train_loader,
    train_transform,
    training_preprocessing,
)

# Datasets whose parser can add query and gallery to train (data.combineall)
COMBINEALL = ("market1501", "dukemtmcreid", "msmt17")


log = logging.getLogger("omnireid.train")


def load_datasets(config: Config) -> tuple[ReIDDataset, ReIDDataset]:
    """The training data (one source, or several combined) and the data to test on.

    ``data.extra_sources`` ("name=root" entries) join ``data.dataset`` in one classifier with
    their identities and cameras kept apart; ``data.target`` (with ``data.target_root``) tests
    on another dataset's query/gallery: the cross-domain protocol.
    """
    d = config.data
    if d.combineall and d.dataset not in COMBINEALL:
        raise ConfigError(f"data.combineall applies to {sorted(COMBINEALL)}, not {d.dataset}")
    split_dataset = split_dataset_of(config)
    if d.split_id and split_dataset is None:
        raise ConfigError(f"data.split_id applies to {sorted(MULTI_SPLIT)} only")
    if split_dataset is not None and d.split_id >= MULTI_SPLIT[split_dataset]:
        last = MULTI_SPLIT[split_dataset] - 1
        raise ConfigError(f"data.split_id must be within [0, {last}] for {split_dataset}")

    def options(name: str) -> dict[str, Any]:
        return {"split_id": d.split_id} if name == split_dataset else {}

    extra = {"combineall": True} if d.combineall else {}
    dataset = load_dataset(d.dataset, d.root, **extra, **options(d.dataset))
    if d.extra_sources:
        sources = [dataset]
        for entry in d.extra_sources:
            name, sep, root = entry.partition("=")
            if not sep or not name or not root:
                raise ConfigError(f"data.extra_sources: expected 'name=root', got {entry!r}")
            sources.append(load_dataset(name.strip(), root.strip()))
        dataset = combine_sources(sources)
    if not dataset.train:
        raise ConfigError(f"{dataset.name} at {d.root} has no training images")
    if d.target is None:
        return dataset, dataset
    if d.target_root is None:
        raise ConfigError("data.target needs data.target_root (where that dataset lives)")
    return dataset, load_dataset(d.target, d.target_root, **options(d.target))


def check_queries(dataset: ReIDDataset) -> None:
    """Refuse a test set no query of which can be scored: every query needs a gallery image of
    its identity from another camera (same-camera matches are not counted), else no CMC or mAP
    exists."""
    gallery_cams: dict[int, set[int]] = {}
    for s in dataset.gallery:
        gallery_cams.setdefault(s.pid, set()).add(s.camid)
    if not dataset.query:
        raise DatasetLayoutError(f"{dataset.name} has no query images to evaluate")
    if not any(gallery_cams.get(q.pid, set()) - {q.camid} for q in dataset.query):
        raise DatasetLayoutError(
            f"no query of {dataset.name} ({len(dataset.query)} images) has a gallery image of "
            "its identity from another camera: nothing can be evaluated"
        )


def split_dataset_of(config: Config) -> str | None:
    """The multi-split dataset (VIPeR, GRID, CUHK01) ``data.split_id`` selects a split of:
    the training dataset if it is one, else the target; None when neither is."""
    for name in (config.data.dataset, config.data.target):
        if name in MULTI_SPLIT:
            return name
    return None


def accuracy(logits: torch.Tensor, _: torch.Tensor, pids: torch.Tensor) -> dict[str, float]:
    """Batch accuracy of ``(N, C)`` (or a mutual pair's ``(2, N, C)``) logits."""
    return {"acc": (logits.argmax(-1) == pids).float().mean().item()}


def make_evaluator(config: Config, dataset: ReIDDataset, pre: Preprocessing | None = None):
    """Metrics of the model under ``config.test`` (for a ``MutualPair``: the paper's ensemble,
    and model 1 alone as ``model1_*``)."""
    pre = pre or training_preprocessing(config)
    device, t = config.train.device, config.test

    def score(model: nn.Module) -> dict[str, float]:
        ev = evaluate_model(
            Embedder.of_model(model, pre, device),
            dataset,
            metric=t.metric,
            normalize=t.normalize,
            rerank=t.rerank,
            flip=t.flip,
            batch_size=t.batch_size,
            progress=False,
        )
        return ev.result.as_dict()

    def evaluate(model: nn.Module) -> dict[str, float]:
        fast = optimize_for_inference(model) if device == "cpu" else model.eval()
        metrics = score(fast)
        if isinstance(fast, MutualPair):
            fast.use = "model1"
            metrics |= {f"model1_{k}": v for k, v in score(fast).items()}
        return metrics

    return evaluate


def build_model(config: Config, num_classes: int) -> tuple[OSNet | MutualPair, InitRecord | None]:
    """The network (or, with ``model.mutual``, two networks from the same initial weights) and,
    when it starts from ``model.weights``, the record of what loaded (``InitReport.record``)."""
    share = config.model.min_loaded_share
    networks: list[OSNet] = []
    report = None
    for _ in range(2 if config.model.mutual else 1):
        try:
            network = build(config.model.arch, num_classes=num_classes, **model_options(config))
        except UsageError as e:
            raise ConfigError(f"model.arch/model.options: {e}") from e
        if config.model.weights:
            report = init_from_weights(network, config.model.weights, min_share=share)
        networks.append(network)
    if report is not None:
        log.info("%s", report.summary())
    model = MutualPair(networks[0], networks[1]) if config.model.mutual else networks[0]
    return model, (report.record() if report is not None else None)


def reid_statistics(
    logits: torch.Tensor, features: torch.Tensor, pids: torch.Tensor, *, margin: float = 0.3
) -> dict[str, float]:
    """Batch accuracy and the embedding statistics (``losses.embedding_statistics``) the
    collapse detector watches; for a mutual pair, those of network 1's features."""
    stats = accuracy(logits, features, pids)
    stats.update(
        embedding_statistics(features[0] if features.dim() == 3 else features, pids, margin)
    )
    return stats


def collapse_detector(config: Config) -> list[Callback]:
    """The collapse detector ``train.collapse`` asks for (none when "off")."""
    action = config.train.collapse
    if action == "off":
        return []
    return [CollapseDetector("feat_spread", config.train.collapse_spread, action)]


def reid_train_loader(
    config: Config, dataset: ReIDDataset, pre: Preprocessing | None = None
) -> tuple[DataLoader, list]:
    """The training loader of ``dataset.train`` as ``config.data`` says (augmentation, image
    cache, random or P x K batches), and the parts that must hear of each new epoch."""
    d = config.data
    pre = pre or training_preprocessing(config, [s.path for s in dataset.train])
    images = ImageDataset(dataset.train, train_transform(config, pre), cache=d.cache_images)
    if d.cache_images:
        images.preload(show=rank() == 0)
    return train_loader(config, images, dataset.train)


def reid_run(config: Config) -> Run:
    """The re-ID task's ``Run`` (see ``tasks.common.Run``)."""
    dataset, test_dataset = load_datasets(config)
    check_queries(test_dataset)
    model, init = build_model(config, dataset.num_train_pids)
    own = reid_loss(config)
    loss_fn: Any = own
    if config.model.mutual:
        loss_fn = partial(mutual_losses, mutual_weight=config.loss.mutual_weight, own=own)
    callbacks = collapse_detector(config)
    shown: tuple[str, ...] = ("acc", "feat_spread")
    if config.loss.triplet_weight:
        shown += ("triplet", "active_triplets")
        warmup, start = config.loss.triplet_warmup_epochs, config.loss.triplet_start_epoch
        if warmup or start:
            ramp = Ramp(own, "triplet_weight", own.triplet_weight, warmup, start=start)
            callbacks.insert(0, ramp)
    pre = training_preprocessing(config, [s.path for s in dataset.train])
    loader, parts = reid_train_loader(config, dataset, pre)
    split = split_dataset_of(config)
    spec = run_spec(
        config,
        pre,
        "reid",
        num_classes=dataset.num_train_pids,
        feature_dim=model.feature_dim,
        mutual=config.model.mutual,
        init=init,
        split=Split(split, config.data.split_id) if split else None,
    )
    networks: list[nn.Module] = list(model.networks()) if isinstance(model, MutualPair) else [model]
    return Run(
        model=model,
        loader=loader,
        loss_fn=loss_fn,
        spec=spec,
        monitor=partial(reid_statistics, margin=config.loss.triplet_margin),
        evaluate=make_evaluator(config, test_dataset, pre),
        epoch_parts=parts,
        networks=networks,
        callbacks=callbacks,
        shown=shown,
    )
