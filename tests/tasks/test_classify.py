"""train.task: classify: OSNet on CIFAR (ICCV'19 Sec. 4.3), end to end on a tiny archive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from omnireid.config import load_config
from omnireid.data.image_dataset import ArrayImageDataset
from omnireid.evaluation.classification import classification_metrics
from omnireid.models import build
from omnireid.models.spec import load_spec
from omnireid.tasks import fit_from_config
from omnireid.tasks.classify import array_statistics
from tests.data.datasets.test_cifar import write_cifar10_python


def test_array_statistics_are_per_channel_in_unit_range():
    images = np.zeros((2, 2, 2, 3), np.uint8)
    images[..., 0] = 255  # red always on
    images[0, ..., 1] = 255  # green on in one of two images
    mean, std = array_statistics(images)
    assert mean == pytest.approx((1.0, 0.5, 0.0)) and std == pytest.approx((0.0, 0.5, 0.0))


def test_classification_metrics_count_the_argmax():
    images = np.zeros((4, 32, 32, 3), np.uint8)
    images[2:] = 255
    labels = np.array([0, 1, 1, 1])

    class Bright:  # class 1 for bright images, else class 0
        def eval(self):
            return self

        def __call__(self, x):
            bright = (x.mean((1, 2, 3)) > 0).float()
            return torch.stack([1 - bright, bright], 1)

    def to_tensor(img):
        return torch.from_numpy(np.asarray(img, np.float32) / 127.5 - 1).permute(2, 0, 1)

    metrics = classification_metrics(Bright(), images, labels, to_tensor, batch_size=3)
    assert metrics == {"accuracy": 75.0, "error": 25.0}  # image 1 is dark but labelled 1
    assert len(ArrayImageDataset(images, labels, to_tensor)) == 4


def test_a_cifar_run_trains_and_reports_its_error_rate(tmp_path: Path):
    root = write_cifar10_python(tmp_path / "data", per_batch=8)
    overrides = [
        "train.task=classify",
        "data.dataset=cifar10",
        f"data.root={root}",
        "data.height=32",
        "data.width=32",
        "data.batch_size=8",
        "data.workers=0",
        "data.normalization=dataset",
        "model.arch=osnet_x0_25",
        'model.options={"stem": "cifar"}',
        "optim.max_epoch=1",
        "optim.schedule=cosine",
        "loss.label_smoothing=0.0",
        f"train.out_dir={tmp_path / 'run'}",
    ]
    records = fit_from_config(load_config(None, overrides))
    assert records[-1]["images"] == 40 and 0 <= records[-1]["error"] <= 100
    assert records[-1]["error"] == pytest.approx(100 - records[-1]["accuracy"])
    spec = load_spec(tmp_path / "run" / "epoch-0001")
    assert spec.task == "classify" and spec.num_classes == 10 and len(spec.labels) == 10
    assert spec.preprocessing.height == 32 and spec.options == {"stem": "cifar"}
    model = build("osnet_x0_25", num_classes=10).eval()  # logits in eval mode: timm's head
    assert model.forward_head(model.forward_features(torch.zeros(2, 3, 32, 32))).shape == (2, 10)
