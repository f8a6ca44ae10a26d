"""Adapting a trained model to a new site without labels (``train.task: adapt``).

Builds, from a validated config: the source model (``model.weights``, with the architecture
and options it was trained with), the unlabelled target images (``adapt.images``: a folder or
CSV of crops, or the train split of ``data.dataset``), the per-round clustering callback, the
cluster memory and its contrastive loss, a P x K sampler over pseudo-identities, and, when a
labelled test set is named (``data.dataset``'s query/gallery, or ``data.target``), the
evaluator. The result is an ordinary re-ID checkpoint whose spec is the source's (architecture,
options, preprocessing: size, value range, mean/std, output norm) and records what it was
adapted from. The input size is ``data.height x data.width``; ``omnireid adapt`` sets it to the
source's unless told otherwise, and a size other than the source's is used with a warning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
from torch import nn

from omnireid.adapt.adabn import adapt_batchnorm
from omnireid.adapt.api import build_adaptation, samples_of
from omnireid.config import Config
from omnireid.data.datasets import ReIDDataset, Sample, load_dataset
from omnireid.data.image_dataset import ImageDataset
from omnireid.data.images import list_images
from omnireid.data.transforms import transform_for
from omnireid.errors import ConfigError
from omnireid.models import load_for_inference
from omnireid.models.loader import read_weights
from omnireid.models.spec import ModelSpec, SourceWeights
from omnireid.models.zoo import portable_source
from omnireid.preprocessing import Preprocessing
from omnireid.progress import progress
from omnireid.rundir import RunDir
from omnireid.tasks.common import Run, run_spec, train_transform
from omnireid.tasks.reid import make_evaluator

log = logging.getLogger("omnireid.train")


def target_samples(config: Config) -> tuple[list[Sample], np.ndarray | None, ReIDDataset | None]:
    """The unlabelled target images, their true pids when a benchmark gives them (for the
    purity report only), and the labelled set to test on, if any."""
    d, images = config.data, config.adapt.images
    test = load_dataset(d.target, d.target_root) if d.target and d.target_root else None
    if not images:
        dataset = load_dataset(d.dataset, d.root)
        if not dataset.train:
            raise ConfigError(f"{d.dataset} at {d.root} has no train images to adapt on")
        pids = np.array([s.pid for s in dataset.train])
        return list(dataset.train), pids, test or dataset
    path = Path(images)
    if path.suffix.lower() == ".csv":
        dataset = load_dataset("custom", path)
        rows = dataset.train or [*dataset.query, *dataset.gallery]
        return list(rows), np.array([s.pid for s in rows]), test
    return samples_of(list_images(path)), None, test  # cameras from Market-style names


def source_spec(weights: str | Path) -> ModelSpec:
    """The spec of the model to adapt (stored with it, or inferred for a plain file), read
    before a config is made: ``omnireid adapt`` takes its input size from it."""
    return read_weights(weights).spec


def _source(config: Config, method: str = "") -> tuple[nn.Module, Preprocessing, ModelSpec]:
    """The model to adapt (in eval mode), the preprocessing (the source's, at ``data.height x
    data.width``: a size other than the one it was trained at is used with a warning), and the
    spec the adapted checkpoints carry: the source's, recording its weights (``zoo:NAME``, a
    path inside the run folder relative to it, else the file name: ``portable_source``), their
    SHA-256 and ``method`` when not the full self-training)."""
    d, weights = config.data, config.model.weights
    assert weights  # adapt_run refuses a config without model.weights
    info = read_weights(weights)
    model, _ = load_for_inference(info)
    source = cast(ModelSpec, model.spec)  # load_for_inference attaches it
    stored = source.preprocessing or Preprocessing()
    pre = replace(stored, height=d.height, width=d.width)
    recorded = info.stored is not None and info.stored.preprocessing is not None
    if recorded and pre.input_size != stored.input_size:
        log.warning(
            "%s was trained at %dx%d; adapting it at %dx%d as configured (data.height/width)",
            weights,
            *stored.input_size,
            *pre.input_size,
        )
    origin = SourceWeights(
        path=portable_source(weights, Path(config.train.out_dir)),
        sha256=source.weights_sha256,
        method=method,
    )
    spec = run_spec(
        config,
        pre,
        "reid",
        arch=source.arch,
        options=source.options,
        num_classes=source.num_classes,
        feature_dim=source.feature_dim,
        adapted_from=origin,
    )
    return model, pre, spec


def adapt_run(config: Config) -> Run:
    """The adaptation task's ``Run`` (see ``tasks.common.Run``)."""
    if not config.model.weights:
        raise ConfigError("train.task=adapt needs model.weights: the model to adapt")
    if config.model.mutual:
        raise ConfigError("train.task=adapt adapts one network; model.mutual is not supported")
    a, d = config.adapt, config.data
    model, pre, spec = _source(config)
    model.train()
    samples, true_pids, test = target_samples(config)
    k = d.num_instances or 4
    if len(samples) < 2 * k:
        raise ConfigError(f"only {len(samples)} target images: too few to cluster and train on")
    parts = build_adaptation(
        samples,
        train_transform(config, pre),
        transform_for(pre),
        batch_size=d.batch_size,
        num_instances=k,
        batches=a.batches,
        temperature=a.temperature,
        momentum=a.momentum,
        eps=a.eps,
        min_samples=a.min_samples,
        k1=a.k1,
        k2=a.k2,
        camera_balanced=a.camera_balanced,
        adabn=a.adabn,
        true_pids=true_pids,
        seed=config.train.seed,
        workers=d.workers,
        cache=d.cache_images,
        device=config.train.device,
    )
    return Run(
        model=model,
        loader=parts.loader,
        loss_fn=parts.memory,
        spec=spec,
        monitor=parts.memory.accuracy,
        evaluate=make_evaluator(config, test, pre) if test is not None else None,
        epoch_parts=parts.parts,
        callbacks=[parts.rounds],
        shown=("acc", "clusters", "outliers", "purity"),
    )


def adabn_from_config(config: Config) -> dict[str, float]:
    """The zero-training baseline: AdaBN on the target images, saved as ``train.out_dir``'s
    checkpoint (epoch 0) and evaluated when a test set is named; returns the metrics."""
    from torch.utils.data import DataLoader

    from omnireid.engine.checkpoint import save_checkpoint

    model, pre, spec = _source(config, method="adabn")
    samples, _, test = target_samples(config)
    loader = DataLoader(ImageDataset(samples, transform_for(pre)), batch_size=64)
    batches = (x for x, *_ in progress(loader, desc="AdaBN", unit="batch"))
    adapt_batchnorm(model, batches, config.train.device)
    run = RunDir(Path(config.train.out_dir))
    save_checkpoint(run.path, model, 0, spec=spec)
    metrics = make_evaluator(config, test, pre)(model) if test is not None else {}
    run.metrics.write_text(json.dumps({"epoch": 0, **metrics}, indent=2))
    return metrics
