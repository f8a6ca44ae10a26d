"""Category recognition (CIFAR, ICCV'19 Sec. 4.3): top-1 accuracy and error rate."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from omnireid.data.image_dataset import ArrayImageDataset


@torch.inference_mode()
def classification_metrics(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    transform: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """``{"accuracy", "error"}`` in percent of ``model``'s argmax over ``(N, H, W, 3)`` images.

    ``model`` gives ``(N, C)`` logits in eval mode through its head, ``forward_head(
    forward_features(x))`` (an OSNet, timm's interface), or else through its ``forward``.
    """
    loader = DataLoader(ArrayImageDataset(images, labels, transform), batch_size=batch_size)
    model.eval()
    head = getattr(model, "forward_head", None)
    correct = total = 0
    for x, y, _ in loader:
        x = x.to(device)
        if head is not None:  # the model has forward_features too (timm's interface)
            features = cast(Callable[[torch.Tensor], torch.Tensor], model.forward_features)
            logits = head(features(x))
        else:
            logits = model(x)
        predicted = logits.argmax(1).cpu()
        correct += int((predicted == y).sum())
        total += len(y)
    accuracy = 100.0 * correct / max(total, 1)
    return {"accuracy": accuracy, "error": 100.0 - accuracy}
