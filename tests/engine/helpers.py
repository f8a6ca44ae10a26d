"""A bare training loop state for testing callbacks one hook at a time."""

import torch
from torch import nn

from omnireid.engine.loop import Loop


def bare_loop(model=None, epoch=0, max_epoch=10, record=None) -> Loop:
    """A ``Loop`` of ``model`` (a 2 -> 2 linear layer by default) with SGD at lr 0.1, at
    0-based ``epoch``, its record holding the 1-based epoch and ``record``."""
    model = model or nn.Linear(2, 2)
    loop = Loop(model, torch.optim.SGD(model.parameters(), lr=0.1), max_epoch)
    loop.epoch = epoch
    loop.record = {"epoch": epoch + 1, **(record or {})}
    return loop
