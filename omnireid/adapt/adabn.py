"""AdaBN (Li et al. 2016): re-estimate BatchNorm statistics on the target domain's images.

The zero-training baseline of domain adaptation: only the running means and variances of the
BatchNorm layers change, to the target images' statistics; every learned weight stays. Instance
norms (OSNet-IBN/AIN) keep no running statistics and are not touched.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def adapt_batchnorm(
    model: nn.Module, batches: Iterable[torch.Tensor], device: str | torch.device = "cpu"
) -> int:
    """Replace every BatchNorm's running statistics by the average over ``batches`` of
    ``(N, 3, H, W)`` images of each batch's mean and variance; returns the images seen.

    The model ends in eval mode. Batches should be large enough to give BatchNorm1d (the fc
    layer) more than one sample each.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    seen = 0
    try:
        for images in batches:
            model(images.to(device))
            seen += len(images)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return seen
