"""Model size and cost in the papers' convention.

Mult-adds are the multiply-accumulates of every convolution and linear layer run in a forward
pass, plus one per output element for a bias; a layer called several times (the shared
aggregation gate) counts every call. Norms, activations and pooling are free. The classifier
is excluded from both counts, as in ICCV Table 1 and Table 6.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Complexity:
    params: int
    mult_adds: int


def _layer_mult_adds(module: nn.Module, out: torch.Tensor) -> int:
    bias = 1 if module.bias is not None else 0
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = kh * kw * module.in_channels // module.groups + bias
        return per_output * out.numel()
    if isinstance(module, nn.Linear):
        return (module.in_features + bias) * out.numel()
    return 0


@torch.no_grad()
def count_complexity(
    model: nn.Module,
    height: int = 256,
    width: int = 128,
    exclude: tuple[str, ...] = ("classifier",),
) -> Complexity:
    """Parameters and mult-adds of ``model`` for one ``3 x height x width`` image.

    Args:
        model: the network; it is run once in eval mode and its mode is restored.
        exclude: top-level submodule names left out of both counts.
    """
    skipped = {
        id(m) for name in exclude if hasattr(model, name) for m in getattr(model, name).modules()
    }
    params = sum(
        p.numel() for n, p in model.named_parameters() if n.split(".", 1)[0] not in exclude
    )
    total = 0

    def hook(module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += _layer_mult_adds(module, out)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and id(m) not in skipped
    ]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        model(torch.zeros(1, 3, height, width, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return Complexity(params=params, mult_adds=total)
