"""The attribute-recognition task (``train.task: attributes``, ICCV'19 Sec. 4.2).

Builds, from a validated config: the OSNet attribute model, a loader of (image, labels), the
DeepMAR-weighted BCE loss, the label accuracy as the training statistic, and an evaluator
reporting mA and the instance-based metrics.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import cast

import torch
from torch import nn

from omnireid.config import Config
from omnireid.data.datasets.attributes import (
    ATTRIBUTE_DATASETS,
    AttributeDataset,
    label_matrix,
    load_attribute_dataset,
)
from omnireid.data.image_dataset import AttributeImageDataset
from omnireid.data.transforms import transform_for
from omnireid.errors import ConfigError
from omnireid.evaluation.attributes import evaluate_attribute_model
from omnireid.losses.attributes import attribute_losses, positive_ratios
from omnireid.models.attributes import AttributeNet, build_attribute_model
from omnireid.models.fused import optimize_for_inference
from omnireid.preprocessing import Preprocessing
from omnireid.tasks.common import (
    Run,
    run_spec,
    train_loader,
    train_transform,
    training_preprocessing,
)

log = logging.getLogger("omnireid.train")


def label_accuracy(logits: torch.Tensor, _: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Share of ``(N, A)`` 0/1 labels predicted right at probability 0.5."""
    return {"acc": ((logits > 0) == (labels > 0.5)).float().mean().item()}


def make_attribute_evaluator(config: Config, dataset: AttributeDataset, pre: Preprocessing):
    """mA / Acc / Prec / Rec / F1 (percent) on the test split."""
    transform = transform_for(pre)
    device = config.train.device

    def evaluate(model: nn.Module) -> dict[str, float]:
        if device == "cpu":  # BN-folded backbone, same embedding
            net = cast(AttributeNet, model)  # the task's model
            model = nn.Sequential(optimize_for_inference(net.backbone), net.head)
        result = evaluate_attribute_model(model.eval(), dataset.test, transform, device=device)
        return result.as_dict()

    return evaluate


def attributes_run(config: Config) -> Run:
    """The attribute task's ``Run`` (see ``tasks.common.Run``)."""
    if config.model.mutual:
        raise ConfigError("model.mutual is not supported with train.task=attributes")
    if config.data.num_instances:
        raise ConfigError("data.num_instances (identity sampler) does not apply to attributes")
    if config.data.dataset not in ATTRIBUTE_DATASETS:
        raise ConfigError(
            f"data.dataset must be one of {sorted(ATTRIBUTE_DATASETS)} with "
            f"train.task=attributes, got {config.data.dataset!r}"
        )
    dataset = load_attribute_dataset(config.data.dataset, config.data.root)
    if not dataset.train or not dataset.test:
        raise ConfigError(f"{dataset.name}: attribute training needs train and test images")
    log.info("%s", dataset.summary())
    model = build_attribute_model(
        config.model.arch, dataset.num_attributes, weights=config.model.weights
    )
    ratios = positive_ratios(label_matrix(dataset.train))
    loss_fn = partial(attribute_losses, ratios=ratios if config.loss.deepmar else None)
    pre = training_preprocessing(config, [s.path for s in dataset.train])
    images = AttributeImageDataset(dataset.train, train_transform(config, pre))
    loader, parts = train_loader(config, images)
    spec = run_spec(
        config,
        pre,
        "attributes",
        num_classes=dataset.num_attributes,
        feature_dim=model.backbone.feature_dim,
        options={},
        labels=dataset.attributes,
        label_priors=[round(v, 6) for v in ratios.tolist()],
    )
    return Run(
        model=model,
        loader=loader,
        loss_fn=loss_fn,
        spec=spec,
        monitor=label_accuracy,
        evaluate=make_attribute_evaluator(config, dataset, pre),
        epoch_parts=parts,
        shown=("acc", "mA", "f1"),
    )
