"""Training recipes that more than one entry point follows, written down once.

``ADAPT`` is how a model is adapted to a new site without labels: Cluster Contrast's
optimisation (Dai et al. 2021: Adam, lr 3.5e-4, weight decay 5e-4), here with a cosine decay
over the rounds, P x K = 16 x 4 batches, flip + random crop + random erasing, 30 rounds, cosine
distance for testing. Two entry points read it: the config defaults of ``train.task: adapt``
(``config.TASK_DEFAULTS``, so ``omnireid adapt`` and ``omnireid train`` with that task train
the same way unless a setting is given) and the Python API ``omnireid.adapt.adapt()``. A leaf
module (no torch, no package) so that both the config and the library can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AdaptRecipe:
    """The optimisation, batches and augmentation of an adaptation (module docstring)."""

    optimizer: str = "adam"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    epochs: int = 30  # rounds: one clustering and one pass of ``adapt.batches`` batches each
    batch_size: int = 64
    num_instances: int = 4  # K of P x K
    workers: int = 0
    flip: bool = True
    random_crop: bool = True
    random_erasing: bool = True
    metric: str = "cosine"  # how the adapted model is tested
    eval_every: int = 5  # rounds between evaluations (when a test set is named)

    def as_config(self) -> dict[str, dict[str, Any]]:
        """The recipe as config sections (``section -> {key: value}``)."""
        return {
            "optim": {
                "name": self.optimizer,
                "lr": self.lr,
                "weight_decay": self.weight_decay,
                "schedule": self.schedule,
                "max_epoch": self.epochs,
            },
            "data": {
                "batch_size": self.batch_size,
                "num_instances": self.num_instances,
                "workers": self.workers,
                "flip": self.flip,
                "random_crop": self.random_crop,
                "random_erasing": self.random_erasing,
            },
            "test": {"metric": self.metric},
            "train": {"eval_every": self.eval_every},
        }


ADAPT = AdaptRecipe()

__all__ = ["ADAPT", "AdaptRecipe"]
