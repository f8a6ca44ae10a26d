"""What the benchmark scripts share: a description of the machine they ran on, and the scoring
of a trained model on test sets, a seeded random model for the speed benchmarks."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from omnireid.models import build

if TYPE_CHECKING:
    from omnireid.data.datasets import ReIDDataset

SCORES = ("rank1", "rank5", "mAP")


def cpu_name() -> str:
    """The CPU model Linux reports (``/proc/cpuinfo``), else what ``platform`` knows."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> str:
    """CPU model, cores, torch version and threads, Python version: one line for a report."""
    return (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), python {platform.python_version()}"
    )


def score(
    weights: str | Path, datasets: dict[str, ReIDDataset], metric: str = "cosine"
) -> dict[str, dict[str, float]]:
    """R1/R5/mAP of a model (run folder, checkpoint or file; its stored preprocessing) on
    every dataset, with ``metric`` distance."""
    from omnireid.evaluation.evaluate import evaluate_model
    from omnireid.evaluation.features import Embedder
    from omnireid.models import load_for_inference
    from omnireid.models.fused import optimize_for_inference

    model, pre = load_for_inference(weights)
    fast = Embedder.of_model(optimize_for_inference(model), pre)
    out = {}
    for name, dataset in datasets.items():
        ev = evaluate_model(fast, dataset, metric=metric, progress=False)
        out[name] = {k: v for k, v in ev.result.as_dict().items() if k in SCORES}
    return out


def random_model(arch: str) -> nn.Module:
    """``arch`` with seeded random weights and non-trivial BatchNorm statistics (eval mode):
    the speed benchmarks' model, so that no fused or exported path meets identity norms."""
    torch.manual_seed(0)
    model = build(arch, num_classes=10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()
