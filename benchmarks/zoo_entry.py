"""What the training benchmarks share: writing their model into the zoo (omnireid/zoo/NAME)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import machine

from omnireid.config import Config, config_to_dict
from omnireid.engine.callbacks import read_jsonl
from omnireid.models.zoo import MARKET_LICENCE, add_to_zoo
from omnireid.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
EVAL = "omnireid evaluate --weights zoo:{name} --dataset {dataset} --root {root}"


def logged_run(run: Path) -> tuple[list[dict[str, Any]], float]:
    """A finished run's log records and its training minutes (the sum of its epochs' times,
    evaluation excluded): what a reused run reports instead of this process's time."""
    records = read_jsonl(RunDir(run).log)
    return records, sum(r["seconds"] for r in records) / 60


def shown_path(path: str | Path) -> str:
    """``path`` as the card's commands show it: relative to the repository when it lies next to
    it (``../shared/...``), as given otherwise."""
    path = Path(path)
    if path.is_absolute() and path.is_relative_to(ROOT.parent):
        return os.path.relpath(path, ROOT)
    return str(path)


def code_version() -> str:
    """The commit the benchmark ran from (``-dirty`` when the tree had changes)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit


def write_zoo_entry(
    run: Path,
    name: str,
    summary: str,
    config: Config,
    records: list[dict[str, Any]],
    minutes: float,
    metrics: dict[str, dict[str, float]],
    roots: dict[str, str],
    *,
    trained_on: str | None = None,
    licence: str = MARKET_LICENCE,
    note: str = "",
) -> Path:
    """Put ``run``'s final model in the zoo with its card. ``metrics``: per test set (a dataset
    name as ``omnireid evaluate --dataset`` takes it), measured by this code; ``roots``: where
    each test set lives, for the card's reproduce commands; ``trained_on``: what the card says
    the model learnt from (default ``config.data.dataset``); ``note``: anything else a user of
    the model should know about how it was made (kept in the card's ``training``)."""
    shown = {}
    for data, values in metrics.items():
        dataset = "custom" if data == "twocam" else data
        command = EVAL.format(name=name, dataset=dataset, root=shown_path(roots[data]))
        metric = config.test.metric
        shown[data] = {**{k: round(float(v), 2) for k, v in values.items()}, "metric": metric}
        shown[data]["command"] = command + (f" --metric {metric}" if metric != "euclidean" else "")
    card = {
        "summary": summary,
        "trained_on": trained_on or config.data.dataset,
        "licence": licence,
        "training": {
            "command": " ".join(shlex.quote(a) for a in ["python", *sys.argv]),
            "config": config_to_dict(config),
            "epochs": max((r["epoch"] for r in records), default=config.optim.max_epoch),
            "wall_minutes": round(minutes, 1),
            "machine": machine(),
            "seed": config.train.seed,
            "code": code_version(),
        },
        "metrics": shown,
    }
    if note:
        card["training"]["note"] = note
    folder = add_to_zoo(run, name, card)
    print(f"zoo entry: {folder} (use it as --weights zoo:{name})")
    return folder
