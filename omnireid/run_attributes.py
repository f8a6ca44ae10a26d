"""The attribute-recognition task of ``omnireid train`` (``train.task: attributes``).

Turns a validated ``Config`` into the pieces ``run.fit_from_config`` trains: the OSNet
attribute model, a loader of (image, labels), the DeepMAR-weighted BCE loss and an evaluator
printing mA and the instance-based metrics (ICCV'19 Sec. 4.2).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from omnireid.config import Config, config_to_dict
from omnireid.data.datasets.attributes import (
    AttributeDataset,
    AttributeImageDataset,
    label_matrix,
    load_attribute_dataset,
)
from omnireid.data.transforms import build_eval_transform
from omnireid.deploy.fast import optimize_for_inference
from omnireid.engine.distributed import rank, world_size
from omnireid.evaluation.attributes import evaluate_attribute_model
from omnireid.losses.attributes import attribute_losses, positive_ratios
from omnireid.models.attributes import AttributeNet, build_attribute_model
from omnireid.run import make_train_transform, preprocessing_meta


def make_attribute_loader(config: Config, dataset: AttributeDataset) -> DataLoader:
    d = config.data
    images = AttributeImageDataset(dataset.train, make_train_transform(config))
    # fresh workers every epoch, as make_train_loader: resumed runs replay the augmentations
    common = dict(num_workers=d.workers, persistent_workers=False, drop_last=True)
    if world_size() > 1:
        sampler = DistributedSampler(
            images, num_replicas=world_size(), rank=rank(), seed=config.train.seed, drop_last=True
        )
        return DataLoader(images, batch_size=d.batch_size, sampler=sampler, **common)
    return DataLoader(images, batch_size=d.batch_size, shuffle=True, **common)


def make_attribute_evaluator(config: Config, dataset: AttributeDataset):
    """mA / Acc / Prec / Rec / F1 (percent) on the test split, printed and returned."""
    transform = build_eval_transform(config.data.height, config.data.width)
    device = config.train.device

    def evaluate(model: nn.Module) -> dict[str, float]:
        if device == "cpu":  # BN-folded backbone, same embedding
            model = nn.Sequential(optimize_for_inference(model.backbone), model.head)
        result = evaluate_attribute_model(model.eval(), dataset.test, transform, device=device)
        metrics = result.as_dict()
        print(
            "attributes: " + "  ".join(f"{k} {v:.2f}" for k, v in metrics.items()), file=sys.stderr
        )
        return metrics

    return evaluate


def attribute_task(config: Config) -> tuple[AttributeNet, DataLoader, Any, Any, dict[str, Any]]:
    """``(model, train loader, loss_fn, evaluate, checkpoint meta)`` for attribute training."""
    if config.model.mutual:
        raise ValueError("model.mutual is not supported with train.task=attributes")
    if config.data.num_instances:
        raise ValueError("data.num_instances (identity sampler) does not apply to attributes")
    dataset = load_attribute_dataset(config.data.dataset, config.data.root)
    if not dataset.train or not dataset.test:
        raise ValueError(f"{dataset.name}: attribute training needs train and test images")
    print(dataset.summary(), file=sys.stderr)
    model = build_attribute_model(
        config.model.arch, dataset.num_attributes, weights=config.model.weights
    )
    ratios = positive_ratios(label_matrix(dataset.train))
    loss_fn = partial(attribute_losses, ratios=ratios if config.loss.deepmar else None)
    meta = {
        "task": "attributes",
        "arch": config.model.arch,
        "num_attributes": dataset.num_attributes,
        "attributes": dataset.attributes,
        "positive_ratios": [round(v, 6) for v in ratios.tolist()],
        "preprocessing": preprocessing_meta(config),
        "config": config_to_dict(config),
    }
    return (
        model,
        make_attribute_loader(config, dataset),
        loss_fn,
        make_attribute_evaluator(config, dataset),
        meta,
    )
