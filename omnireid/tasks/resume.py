"""Resuming honestly: a run folder is continued only with the config it was trained with.

``check_resume(config)`` compares the config of a new invocation with the ``config.json`` of
the run folder it would resume. Settings that change what is trained (model, data, optimiser,
loss, seed, ...) must match; settings that only change where data lives, how often it is
evaluated, logged or kept may differ. A difference is a ``ConfigError`` naming every changed
key, unless ``train.extend`` asks to extend the run and only ``optim.max_epoch`` /
``optim.milestones`` changed: the schedule is then rebuilt for the new length, and the change
is recorded in ``changes.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omnireid.config import Config, config_to_dict
from omnireid.engine.checkpoint import checkpoint_candidates
from omnireid.engine.files import disk_error
from omnireid.errors import ConfigError
from omnireid.rundir import CheckpointDir, RunDir

# Keys that may differ between a run and its resumption (they do not change what is trained)
FREE = {
    "data.root",
    "data.workers",
    "data.cache_images",
    "data.target",
    "data.target_root",
    "train.out_dir",
    "train.eval_every",
    "train.keep",
    "train.resume",
    "train.extend",
    "train.tensorboard",
    "train.collapse",
    "train.collapse_spread",
    "train.device",
    "train.budget_minutes",
    "train.budget_reserve_minutes",
    "train.budget_clock",
}
FREE_SECTIONS = ("test",)
# Sections only one task reads: for a run of another task they change nothing that is trained
TASK_SECTIONS = {"search": "nas", "adapt": "adapt"}
EXTENDABLE = {"optim.max_epoch", "optim.milestones"}


def _flat(tree: dict[str, Any]) -> dict[str, Any]:
    """``{"optim": {"lr": x}}`` -> ``{"optim.lr": x}`` (a config has sections of values)."""
    return {f"{s}.{k}": v for s, section in tree.items() for k, v in (section or {}).items()}


def config_changes(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (stored, new)}`` for every training-relevant key that differs. A key the stored
    config lacks (a setting added in a later version) counts as its default; a section only
    another task reads (``search`` for a re-ID run) is not compared."""
    defaults = _flat(config_to_dict(Config()))
    old, now = _flat(stored), _flat(new)
    task = now.get("train.task", defaults["train.task"])
    unread = {section for section, owner in TASK_SECTIONS.items() if owner != task}
    changes = {}
    for key in sorted(set(old) | set(now)):
        section = key.split(".")[0]
        if key in FREE or section in FREE_SECTIONS or section in unread:
            continue
        before, after = old.get(key, defaults.get(key)), now.get(key, defaults.get(key))
        if before != after:
            changes[key] = (before, after)
    return changes


def epochs_trained(out_dir: Path) -> int:
    """The epoch of the newest checkpoint folder of a run (0: none)."""
    epochs = [CheckpointDir(p).epoch for p in checkpoint_candidates(out_dir)]
    return max((e for e in epochs if e is not None), default=0)


def check_resume(config: Config) -> dict[str, tuple[Any, Any]]:
    """The changes a resumed run accepts (empty when nothing changed or nothing is resumed);
    raises ``ConfigError`` for a change that would make the resumed run lie about itself, and
    for an extension to fewer epochs than the run has trained."""
    out_dir = Path(config.train.out_dir)
    stored_file = RunDir(out_dir).config
    if not config.train.resume or not checkpoint_candidates(out_dir) or not stored_file.is_file():
        return {}
    try:
        stored = json.loads(stored_file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{stored_file} is not valid JSON ({e}); cannot check a resume") from e
    if not isinstance(stored, dict) or not all(isinstance(v, dict) for v in stored.values()):
        raise ConfigError(f"{stored_file} is not a run config; cannot check a resume")
    trained, max_epoch = epochs_trained(out_dir), config.optim.max_epoch
    if config.train.extend and max_epoch < trained:
        raise ConfigError(
            f"--extend: optim.max_epoch {max_epoch} is fewer than the {trained} epochs "
            f"{out_dir} has trained; an extension only lengthens a run"
        )
    changes = config_changes(stored, config_to_dict(config))
    if not changes:
        return {}
    listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in changes.items()))
    if config.train.extend and set(changes) <= EXTENDABLE:
        return changes
    extendable = set(changes) <= EXTENDABLE and max_epoch >= trained
    hint = " (or --extend to continue it with the new length)" if extendable else ""
    raise ConfigError(
        f"{out_dir} holds a run trained with another config ({listed}): resuming it would train "
        f"one thing and record another; use another train.out_dir{hint}"
    )


def record_extension(out_dir: Path, epoch: int, changes: dict[str, tuple[Any, Any]]) -> None:
    """Append what an extension changed, and from which epoch, to ``changes.jsonl``."""
    entry = {"epoch": epoch, "changes": {k: list(v) for k, v in changes.items()}}
    path = RunDir(out_dir).changes
    try:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")
    except OSError as e:
        raise disk_error(e, path.name, out_dir, "the checkpoints are") from e
