"""Category recognition (``train.task: classify``): OSNet on CIFAR-10/100 (ICCV'19 Sec. 4.3).

The network is the Table 1 OSNet with a classifier over the dataset's classes (2.2M parameters;
``model.options: {layers: [3, 8, 6]}`` is the paper's deeper 4.6M version, both as Table 8
counts them) at 32x32; training augments with translation (4-pixel padding and a random crop)
and mirroring; the evaluator reports top-1 accuracy and error rate on the test split.
"""

from __future__ import annotations

import numpy as np
from torch import nn
from torchvision.transforms import v2

from omnireid.config import Config
from omnireid.data.datasets import load_classification_dataset
from omnireid.data.image_dataset import ArrayImageDataset
from omnireid.data.transforms import ToNormalizedTensor
from omnireid.errors import ConfigError, UsageError
from omnireid.evaluation.classification import classification_metrics
from omnireid.models import build
from omnireid.models.weights import load_weights
from omnireid.preprocessing import Preprocessing
from omnireid.tasks.common import Run, model_options, reid_loss, run_spec, train_loader
from omnireid.tasks.reid import accuracy


def array_statistics(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in ``[0, 1]`` units of ``(N, H, W, 3)`` uint8 images."""
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    return tuple(pixels.mean(0).tolist()), tuple(pixels.std(0).tolist())


def classify_run(config: Config) -> Run:
    """The category-recognition task's ``Run`` (see ``tasks.common.Run``)."""
    d = config.data
    if config.model.mutual or d.num_instances:
        raise ConfigError("train.task=classify takes neither model.mutual nor data.num_instances")
    if config.loss.triplet_weight:
        raise ConfigError("train.task=classify: the triplet loss needs identities; unset it")
    dataset = load_classification_dataset(d.dataset, d.root)
    try:
        model = build(config.model.arch, num_classes=dataset.num_classes, **model_options(config))
    except UsageError as e:
        raise ConfigError(f"model.arch/model.options: {e}") from e
    if config.model.weights:
        load_weights(model, config.model.weights)
    if d.normalization == "dataset":
        mean, std = array_statistics(dataset.train.images)
        pre = Preprocessing(d.height, d.width, mean, std)  # type: ignore[arg-type]
    else:
        pre = Preprocessing(d.height, d.width)
    steps = [v2.Resize((d.height, d.width))] if (d.height, d.width) != (32, 32) else []
    augment = v2.Compose(
        [
            *steps,
            v2.RandomCrop((d.height, d.width), padding=4),  # translation
            v2.RandomHorizontalFlip(0.5),  # mirroring
            ToNormalizedTensor(pre.mean, pre.std),
        ]
    )
    plain = v2.Compose([*steps, ToNormalizedTensor(pre.mean, pre.std)])
    images = ArrayImageDataset(dataset.train.images, dataset.train.labels, augment)
    loader, parts = train_loader(config, images)
    test, device = dataset.test, config.train.device

    def evaluate(trained: nn.Module) -> dict[str, float]:
        return classification_metrics(trained, test.images, test.labels, plain, device=device)

    spec = run_spec(
        config,
        pre,
        "classify",
        num_classes=dataset.num_classes,
        feature_dim=model.feature_dim,
        labels=dataset.classes,
    )
    return Run(
        model=model,
        loader=loader,
        loss_fn=reid_loss(config),
        spec=spec,
        monitor=accuracy,
        evaluate=evaluate,
        epoch_parts=parts,
        shown=("acc", "error"),
    )
