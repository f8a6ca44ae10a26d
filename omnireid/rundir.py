"""The run folder: one owner of every file name a training run writes.

A run folder (``train.out_dir``) holds the run's config, its per-epoch log, its final metrics,
a text file ``latest`` naming the newest complete checkpoint, and checkpoint folders
``epoch-XXXX/`` (weights, training state, the model spec). Tasks add their own files (the IN
search's ``arch.jsonl`` and ``child_arch.json``, the split protocol's ``splits.json``, ...).
Every module that reads or writes one of them asks ``RunDir`` / ``CheckpointDir`` for its path
instead of spelling the name, so the layout is written down once, here, and a rename is one
line. A leaf module (no torch, no other package) so that every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

EPOCH_PREFIX = "epoch-"


@dataclass(frozen=True)
class CheckpointDir:
    """One checkpoint folder ``epoch-XXXX/`` (or a zoo entry, laid out the same way)."""

    path: Path

    MODEL: ClassVar[str] = "model.safetensors"  # the state_dict (weights only)
    STATE: ClassVar[str] = "state.pt"  # optimiser, schedule, RNG states, epoch
    SPEC: ClassVar[str] = "meta.json"  # the model spec (``models.spec.ModelSpec``)
    CARD: ClassVar[str] = "card.json"  # a zoo entry's model card

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    @property
    def state(self) -> Path:
        return self.path / self.STATE

    @property
    def spec(self) -> Path:
        return self.path / self.SPEC

    @property
    def card(self) -> Path:
        return self.path / self.CARD

    @property
    def is_complete(self) -> bool:
        """Whether the folder holds weights (a checkpoint being written is not renamed yet)."""
        return self.model.is_file()

    @property
    def epoch(self) -> int | None:
        """The epoch its name says (``epoch-0012`` -> 12); None for another name."""
        digits = self.path.name.removeprefix(EPOCH_PREFIX)
        named = self.path.name.startswith(EPOCH_PREFIX)
        return int(digits) if named and digits.isascii() and digits.isdigit() else None


@dataclass(frozen=True)
class RunDir:
    """A training run folder and the name of every file in it."""

    path: Path

    CONFIG: ClassVar[str] = "config.json"  # the run's config (``tasks.resume`` compares it)
    LOG: ClassVar[str] = "log.jsonl"  # one record per epoch
    METRICS: ClassVar[str] = "metrics.json"  # the last record, with its evaluation
    LATEST: ClassVar[str] = "latest"  # text: the name of the newest complete checkpoint
    LOCK: ClassVar[str] = ".lock"  # held while a process trains the folder
    CHANGES: ClassVar[str] = "changes.jsonl"  # what each --extend changed, from which epoch
    CURVES: ClassVar[str] = "curves.png"  # training curves
    TENSORBOARD: ClassVar[str] = "tensorboard"  # event files, when train.tensorboard is set
    SPLITS: ClassVar[str] = "splits.json"  # the multi-split protocol's per-split metrics
    ARCH_LOG: ClassVar[str] = "arch.jsonl"  # the IN search: pi and softmax(pi) per epoch
    CHILD_ARCH: ClassVar[str] = "child_arch.json"  # the IN search: the derived child
    PI_PLOT: ClassVar[str] = "pi.png"  # the IN search: softmax(pi) over the epochs
    SEEDS: ClassVar[str] = "seeds.json"  # the search protocol: one row per seed
    SEEDS_TABLE: ClassVar[str] = "seeds.md"
    CHOSEN_CHILD: ClassVar[str] = "chosen_child.json"  # the search protocol's best child

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def latest_pointer(self) -> Path:
        return self.path / self.LATEST

    @property
    def lock(self) -> Path:
        return self.path / self.LOCK

    @property
    def changes(self) -> Path:
        return self.path / self.CHANGES

    @property
    def curves(self) -> Path:
        return self.path / self.CURVES

    @property
    def tensorboard(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def splits(self) -> Path:
        return self.path / self.SPLITS

    @property
    def arch_log(self) -> Path:
        return self.path / self.ARCH_LOG

    @property
    def child_arch(self) -> Path:
        return self.path / self.CHILD_ARCH

    @property
    def pi_plot(self) -> Path:
        return self.path / self.PI_PLOT

    def split(self, split_id: int) -> RunDir:
        """The run folder of one split of the multi-split protocol (``splitK``)."""
        return RunDir(self.path / f"split{split_id}")

    def checkpoint(self, epoch: int) -> CheckpointDir:
        """The checkpoint folder of ``epoch`` (1-based; 0 is an untrained-step checkpoint)."""
        return CheckpointDir(self.path / f"{EPOCH_PREFIX}{epoch:04d}")

    def checkpoints(self) -> list[CheckpointDir]:
        """The complete checkpoint folders, newest first (by the epoch in their names)."""
        found = [CheckpointDir(p) for p in self.path.glob(f"{EPOCH_PREFIX}[0-9]*")]
        return sorted((c for c in found if c.is_complete), key=lambda c: c.path, reverse=True)

    def named_latest(self) -> Path | None:
        """The folder the ``latest`` pointer names (unchecked); None without a readable one."""
        try:
            name = self.latest_pointer.read_text().strip()
        except (OSError, UnicodeDecodeError, ValueError):  # none, a folder, damaged bytes
            return None
        return self.path / name if name else None

    def latest(self) -> CheckpointDir | None:
        """The newest complete checkpoint, as ``latest`` names it (None if it names none)."""
        named = self.named_latest()
        if named is None or not CheckpointDir(named).is_complete:
            return None
        return CheckpointDir(named)


def checkpoint_folder(path: str | Path) -> CheckpointDir | None:
    """``path`` when it is a checkpoint folder, a run folder's latest checkpoint, else None."""
    path = Path(path)
    if CheckpointDir(path).is_complete:
        return CheckpointDir(path)
    return RunDir(path).latest() if path.is_dir() else None


__all__ = ["EPOCH_PREFIX", "CheckpointDir", "RunDir", "checkpoint_folder"]
