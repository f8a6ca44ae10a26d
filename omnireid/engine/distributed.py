"""Distributed data-parallel training: launched with ``torchrun``, gloo on CPU, nccl on GPU.

``torchrun --nproc_per_node 2 -m omnireid train --config FILE`` starts one process per
worker; each reads ``RANK``/``WORLD_SIZE`` from the environment, trains on its share of every
epoch's batches, and gradients are averaged across processes by ``DistributedDataParallel``.
Only rank 0 evaluates and writes checkpoints and logs.
"""

from __future__ import annotations

import os

import torch
from torch import distributed as dist
from torch import nn


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main_process() -> bool:
    return rank() == 0


def init_distributed(device: str = "cpu") -> bool:
    """Join the process group torchrun describes in the environment; False when not launched so."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def wrap(model: nn.Module, device: str, find_unused_parameters: bool = False) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` when a process group is up, else ``model``."""
    if world_size() <= 1:
        return model
    ids = [torch.cuda.current_device()] if torch.device(device).type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a (Distributed)DataParallel wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
