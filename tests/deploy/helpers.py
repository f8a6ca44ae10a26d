"""Models for the deployment tests: random weights that exercise every folding and export."""

from pathlib import Path

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


def degenerate(arch: str = "osnet_x0_25") -> nn.Module:
    """``trained_like`` with an all-zero first convolution: every image gets the same feature
    (to float rounding), on every backend."""
    model = trained_like(arch)
    with torch.no_grad():
        model.conv1.conv.weight.zero_()
    return model


def nan_initializer(onnx_file: Path, out: Path) -> str:
    """A copy of ``onnx_file`` at ``out`` whose first 4-d weight has one NaN; its name."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_file))
    for tensor in proto.graph.initializer:
        values = numpy_helper.to_array(tensor).copy()
        if values.ndim == 4:
            values.flat[0] = np.nan
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
            onnx.save(proto, str(out))
            return tensor.name
    raise AssertionError(f"{onnx_file} has no convolution weights")
