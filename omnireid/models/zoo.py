"""The model zoo: models trained by this project's benchmarks on real data, shipped with it.

Each entry is a checkpoint folder in ``omnireid/zoo/NAME/``: ``model.safetensors`` (weights
only), ``meta.json`` (architecture, builder options, preprocessing, training config: what
``load_for_inference`` reads) and ``card.json``, the model card: what it is, how it was trained
(the exact command and config, data, wall time, machine, seed, code version), the metrics it
reached on every test set it was evaluated on with the command that reproduces them, the
file's SHA-256 (checked whenever the weights are read: a changed file is refused) and the data
licence. ``--weights zoo:NAME`` works wherever a weights path does; ``load_pretrained(NAME)`` in
Python. Nothing is downloaded: the files are in the package.
A benchmark that trains on real data writes its model here with ``add_to_zoo``, so adding a
model is rerunning a benchmark and committing its folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from omnireid.errors import CheckpointError
from omnireid.models.loader import load_for_inference
from omnireid.models.weights import (
    CARD_FILE,
    META_FILE,
    MODEL_FILE,
    ZOO_DIR,
    checkpoint_folder,
    expand_zoo,
    file_sha256,
    read_meta,
    zoo_names,
)
from omnireid.preprocessing import Preprocessing

# What every card must say (checked by the tests for every entry)
CARD_KEYS = (
    "name",
    "arch",
    "summary",
    "trained_on",
    "licence",
    "training",
    "metrics",
    "file",
)
TRAINING_KEYS = ("command", "config", "epochs", "wall_minutes", "machine", "seed", "code")
MARKET_LICENCE = (
    "Trained on Market-1501 (Zheng et al., ICCV 2015), whose licence allows research use only: "
    "these weights are for research use only."
)

__all__ = ["CARD_KEYS", "add_to_zoo", "list_zoo", "load_pretrained", "read_zoo_card", "zoo_names"]


def read_zoo_card(name: str, zoo: Path = ZOO_DIR) -> dict[str, Any]:
    """The card of zoo model ``name``."""
    folder = expand_zoo(f"zoo:{name}") if zoo == ZOO_DIR else zoo / name
    path = folder / CARD_FILE
    if not path.is_file():
        raise CheckpointError(f"zoo model {name} has no {CARD_FILE}")
    return json.loads(path.read_text())


def list_zoo(zoo: Path = ZOO_DIR) -> list[dict[str, Any]]:
    """Every zoo model's card, by name."""
    if zoo == ZOO_DIR:
        return [read_zoo_card(name) for name in zoo_names()]
    return [json.loads(p.read_text()) for p in sorted(zoo.glob(f"*/{CARD_FILE}"))]


def load_pretrained(name: str, **options: Any) -> tuple[nn.Module, Preprocessing]:
    """``(model, preprocessing)`` of zoo model ``name`` (``load_for_inference``'s options)."""
    return load_for_inference(f"zoo:{name}", **options)


def add_to_zoo(
    run: str | Path,
    name: str,
    card: dict[str, Any],
    zoo: Path = ZOO_DIR,
) -> Path:
    """Copy a run's latest (or a checkpoint folder's) weights and metadata into ``zoo/name`` and
    write its card: ``card`` gives everything but the name, architecture and file entries, which
    are filled in here. Returns the folder."""
    folder = checkpoint_folder(run)
    if folder is None:
        raise CheckpointError(f"{run} holds no checkpoint to put in the zoo")
    meta = read_meta(folder)
    meta.pop("log", None)  # the last epoch's record: the card has the measured metrics
    target = Path(zoo) / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / MODEL_FILE, target / MODEL_FILE)
    (target / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    weights = target / MODEL_FILE
    full = {
        "name": name,
        "arch": meta.get("arch"),
        "model_options": meta.get("model_options", {}),
        "preprocessing": meta.get("preprocessing", {}),
        **card,
        "file": {
            "name": MODEL_FILE,
            "sha256": file_sha256(weights),
            "bytes": weights.stat().st_size,
        },
    }
    missing = [k for k in CARD_KEYS if k not in full]
    missing += [f"training.{k}" for k in TRAINING_KEYS if k not in full.get("training", {})]
    if missing:
        raise CheckpointError(f"the card of {name} lacks {missing}")
    (target / CARD_FILE).write_text(json.dumps(full, indent=2) + "\n")
    return target
