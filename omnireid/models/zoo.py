"""The model zoo: models trained by this project's benchmarks on real data, shipped with it.

Each entry is a checkpoint folder ``omnireid/zoo/NAME/``: ``model.safetensors`` (weights
only), ``meta.json`` (its ``ModelSpec``: architecture, builder options, preprocessing, the
weights' SHA-256, provenance) and ``card.json``, the model card: what it is, how it was trained
(the exact command and config, data, wall time, machine, seed, code version), the metrics it
reached on every test set it was evaluated on with the command that reproduces them, the
file's name, size and SHA-256 (checked whenever the weights are read: a changed file is
refused) and the data licence. ``list_pretrained()`` gives every entry typed (``ZooEntry``:
spec + card + file hash), ``models.list_models(pretrained=True)`` their names, and
``--weights zoo:NAME`` / ``models.load_pretrained(NAME)`` load one. Nothing is downloaded: the
files are in the package. A benchmark that trains on real data writes its model here with
``add_to_zoo``, so adding a model is rerunning a benchmark and committing its folder.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omnireid.errors import JSON_ERRORS, CheckpointError
from omnireid.models.spec import (
    ModelSpec,
    card_spec_fields,
    file_sha256,
    load_spec,
    migrate_card,
    save_spec,
)
from omnireid.preprocessing import Preprocessing
from omnireid.rundir import CheckpointDir, checkpoint_folder

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
# The checkout the zoo ships in: the cards' commands run from here (``--root ../shared/...``)
# and the paths a card or spec stores are relative to it
REPO_ROOT = ZOO_DIR.parents[1]
ZOO_PREFIX = "zoo:"  # a weights argument naming a zoo entry

# What every card must say (checked by the tests for every entry)
CARD_KEYS = ("name", "summary", "trained_on", "licence", "training", "metrics", "file")
TRAINING_KEYS = ("command", "config", "epochs", "wall_minutes", "machine", "seed", "code")
MARKET_LICENCE = (
    "Trained on Market-1501 (Zheng et al., ICCV 2015), whose licence allows research use only: "
    "these weights are for research use only."
)


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: its folder, its spec (``weights_sha256`` is the card's), its card."""

    name: str
    folder: Path
    spec: ModelSpec
    card: dict[str, Any]

    @property
    def weights(self) -> Path:
        return CheckpointDir(self.folder).model

    @property
    def sha256(self) -> str:
        return self.spec.weights_sha256

    @property
    def size_bytes(self) -> int:
        return int(self.card["file"]["bytes"])

    @property
    def preprocessing(self) -> Preprocessing:
        """What an image goes through before this model (``data.transforms.transform_for``)."""
        return self.spec.preprocessing or Preprocessing()


def _zoo(zoo: Path | None) -> Path:
    return ZOO_DIR if zoo is None else Path(zoo)


def zoo_names(zoo: Path | None = None) -> list[str]:
    """Names of the models in the zoo (default: the shipped one), sorted."""
    folder = _zoo(zoo)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if CheckpointDir(p).is_complete)


def expand_zoo(weights: str | Path) -> Path:
    """``"zoo:NAME"`` -> the zoo's checkpoint folder of NAME; any other path unchanged."""
    text = str(weights)
    if not text.startswith(ZOO_PREFIX):
        return Path(weights)
    name = text.removeprefix(ZOO_PREFIX)
    if name not in zoo_names():
        known = ", ".join(zoo_names()) or "none"
        raise CheckpointError(f"no model {name!r} in the zoo; it has: {known}")
    return ZOO_DIR / name


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text())
    except JSON_ERRORS as e:
        raise CheckpointError(f"{path} is not a valid model card ({e})") from e
    if not isinstance(card, dict):
        raise CheckpointError(f"{path} is not a valid model card (not a JSON object)")
    return card


def check_card(file: Path) -> None:
    """Refuse a zoo model's weights ``file`` whose SHA-256 is not the one its card records.

    Applies to a file beside a ``card.json`` (a zoo folder, in the package or copied) and to
    every file of the package's zoo, which must have its card. One ``CheckpointError`` line.
    """
    card_path = CheckpointDir(file.parent).card
    if not card_path.is_file():
        if file.parent.parent.resolve() == ZOO_DIR.resolve():
            raise CheckpointError(
                f"{file.parent} has no {card_path.name}: its weights cannot be verified"
            )
        return
    entry = _read_card(card_path).get("file") or {}
    if not isinstance(entry, dict) or entry.get("name", file.name) != file.name:
        return  # the card describes another file of the folder
    expected = entry.get("sha256")
    if not isinstance(expected, str) or len(expected) != 64:
        raise CheckpointError(f"{card_path} records no SHA-256 of {file.name}: cannot verify it")
    if file_sha256(file) != expected.lower():
        raise CheckpointError(
            f"{file} is not the file its model card {card_path} describes (SHA-256 mismatch): "
            "changed or damaged; restore it (reinstall omnireid for a shipped zoo model)"
        )


def read_entry(folder: str | Path) -> ZooEntry:
    """The zoo entry in ``folder`` (either spec format; a format-1 card that repeats the
    architecture or preprocessing must agree with the spec)."""
    folder = Path(folder)
    raw = _read_card(CheckpointDir(folder).card)
    spec = load_spec(folder)
    if spec is None:
        raise CheckpointError(f"zoo entry {folder} has no {CheckpointDir.SPEC}")
    sha = str((raw.get("file") or {}).get("sha256", "")).lower()
    if spec.weights_sha256 and sha and spec.weights_sha256 != sha:
        raise CheckpointError(f"{folder}: its spec and its card name different weights files")
    spec = replace(spec, weights_sha256=spec.weights_sha256 or sha)
    repeated = card_spec_fields(raw)
    differs = [k for k, v in repeated.items() if getattr(spec, k) != v]
    if differs:
        raise CheckpointError(f"{folder}: its card and its spec disagree on {differs}")
    return ZooEntry(folder.name, folder, spec, migrate_card(raw))


def zoo_entry(name: str, zoo: Path | None = None) -> ZooEntry:
    """The entry ``name`` of the zoo (default: the shipped one)."""
    folder = expand_zoo(f"{ZOO_PREFIX}{name}") if zoo is None else Path(zoo) / name
    if not CheckpointDir(folder).card.is_file():
        raise CheckpointError(f"zoo model {name} has no {CheckpointDir.CARD}")
    return read_entry(folder)


def list_pretrained(zoo: Path | None = None) -> list[ZooEntry]:
    """Every entry of the zoo (default: the shipped one), by name."""
    return [zoo_entry(name, zoo) for name in zoo_names(zoo)]


def read_zoo_card(name: str, zoo: Path | None = None) -> dict[str, Any]:
    """The card of zoo model ``name`` (its descriptive part; the spec holds the rest)."""
    return zoo_entry(name, zoo).card


def portable(value: Any, base: Path) -> Any:
    """JSON data with every string that is an absolute path made relative to ``base``
    (``/data/market1501`` from ``/src/omnireid`` -> ``../../data/market1501``): what a zoo entry
    stores names no directory of the machine that trained it."""
    if isinstance(value, dict):
        return {k: portable(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, base) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.relpath(value, base)
    return value


def portable_source(weights: str | Path, base: Path) -> str:
    """How a spec names the weights a model started from, readable on any machine: ``zoo:NAME``
    as given, a path inside ``base`` (the run folder) relative to it (``portable``), else the
    file or folder name alone (the SHA-256 stored beside it says which weights they were)."""
    if str(weights).startswith(ZOO_PREFIX):
        return str(weights)
    path, base = Path(weights).resolve(), Path(base).resolve()
    return str(portable(str(path), base)) if path.is_relative_to(base) else path.name


def _portable_spec(spec: ModelSpec, base: Path) -> ModelSpec:
    """``spec`` with its training config and provenance paths relative to ``base``."""
    p = spec.provenance
    source, init = p.adapted_from, p.init
    provenance = replace(
        p,
        trained_on=portable(p.trained_on, base),
        adapted_from=None if source is None else replace(source, path=portable(source.path, base)),
        init=None if init is None else replace(init, weights=portable(init.weights, base)),
    )
    return replace(spec, config=portable(spec.config, base), provenance=provenance)


def add_to_zoo(
    run: str | Path,
    name: str,
    card: dict[str, Any],
    zoo: Path | None = None,
    *,
    base: Path = REPO_ROOT,
) -> Path:
    """Copy a run's latest (or a checkpoint folder's) weights and spec into ``zoo/name`` and
    write its card: ``card`` gives everything but the name and file entries, which are filled
    in here. Absolute paths in the card and the spec (data roots, run folders, initial
    weights) are stored relative to ``base`` (``portable``). Returns the folder."""
    folder = checkpoint_folder(run)
    if folder is None:
        raise CheckpointError(f"{run} holds no checkpoint to put in the zoo")
    spec = load_spec(folder.path)
    if spec is None:
        raise CheckpointError(f"{folder.path} has no {CheckpointDir.SPEC}: not a training run's")
    target = CheckpointDir(_zoo(zoo) / name)
    full = {"name": name, **portable(migrate_card(card), base)}
    full["file"] = {
        "name": CheckpointDir.MODEL,
        "sha256": file_sha256(folder.model),
        "bytes": folder.model.stat().st_size,
    }
    missing = [k for k in CARD_KEYS if k not in full]
    missing += [f"training.{k}" for k in TRAINING_KEYS if k not in full.get("training", {})]
    if missing:
        raise CheckpointError(f"the card of {name} lacks {missing}")
    target.path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder.model, target.model)
    # the last epoch's record stays with the run: the card has the measured metrics
    spec = replace(_portable_spec(spec, base), weights_sha256=full["file"]["sha256"], record={})
    save_spec(spec, target.path)
    target.card.write_text(json.dumps(full, indent=2) + "\n")
    return target.path


__all__ = [
    "CARD_KEYS",
    "ZOO_DIR",
    "ZooEntry",
    "add_to_zoo",
    "check_card",
    "expand_zoo",
    "list_pretrained",
    "portable",
    "portable_source",
    "read_entry",
    "read_zoo_card",
    "zoo_entry",
    "zoo_names",
]
