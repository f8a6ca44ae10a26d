"""Models for the deployment tests: random weights that exercise every folding and export."""

import torch
from torch import nn

from omnireid.models import build


def trained_like(arch: str, **options) -> nn.Module:
    """Random BN statistics and affine parameters, so folding and export are really exercised."""
    torch.manual_seed(0)
    model = build(arch, num_classes=10, **options)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.InstanceNorm2d) and m.affine:
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()
