"""What every dataset parser returns, and the checks they share."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from omnireid.data.images import list_images
from omnireid.errors import DatasetLayoutError

__all__ = ["DatasetLayoutError", "ReIDDataset", "Sample", "folder_images"]


class Sample(NamedTuple):
    """One image: its path, person id and camera id (0-based); ``dsetid`` tells sources apart."""

    path: str
    pid: int
    camid: int
    dsetid: int = 0


@dataclass
class ReIDDataset:
    """Train/query/gallery splits. Train pids are relabelled 0..N-1; query/gallery keep theirs."""

    name: str
    train: list[Sample]
    query: list[Sample]
    gallery: list[Sample]
    extra: dict = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({s.camid for s in self.train})

    def summary(self) -> str:
        rows = [("train", self.train), ("query", self.query), ("gallery", self.gallery)]
        lines = [f"{self.name}: split   ids  images  cameras"]
        for split, items in rows:
            ids, cams = len({s.pid for s in items}), len({s.camid for s in items})
            lines.append(f"  {split:<8}{ids:>7}{len(items):>8}{cams:>9}")
        return "\n".join(lines)


def require_dir(path: Path, what: str) -> Path:
    """``path`` must be a directory; the error names what was expected there."""
    if not path.is_dir():
        parent = path.parent
        found = sorted(p.name for p in parent.iterdir())[:20] if parent.is_dir() else []
        raise DatasetLayoutError(
            f"expected {what} at {path}, but it does not exist"
            + (f"; {parent} contains: {found}" if parent.is_dir() else f" ({parent} is missing)")
        )
    return path


def folder_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted (possibly none)."""
    return list_images(folder, recursive=False, allow_empty=True)


def parse_filename_folder(
    folder: Path,
    pattern: re.Pattern[str],
    *,
    num_cams: int,
    keep_junk: bool = False,
    split: str = "",
) -> list[Sample]:
    """Parse a folder of ``PPPP_cC...`` images (Market-1501/DukeMTMC-reID naming).

    ``pattern`` captures (pid, camera) from the file name; pid -1 (junk) is dropped unless
    ``keep_junk``; cameras are 1-based in names and 0-based in the result.
    """
    samples = []
    bad = []
    for img in folder_images(folder):
        m = pattern.search(img.name)
        if not m:
            bad.append(img.name)
            continue
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1 and not keep_junk:
            continue
        if not 1 <= cam <= num_cams:
            raise DatasetLayoutError(f"{img}: camera {cam} outside 1..{num_cams}")
        samples.append(Sample(str(img), pid, cam - 1))
    if bad:
        raise DatasetLayoutError(
            f"{len(bad)} file(s) in {folder} do not match the naming scheme "
            f"{pattern.pattern!r}, e.g. {bad[:5]}"
        )
    if not samples:
        raise DatasetLayoutError(f"the {split or 'split'} folder {folder} holds no images")
    return samples


def relabel(samples: Sequence[Sample]) -> list[Sample]:
    """Map pids to 0..N-1 in sorted order (the class index used by classifiers)."""
    mapping = {pid: i for i, pid in enumerate(sorted({s.pid for s in samples}))}
    return [s._replace(pid=mapping[s.pid]) for s in samples]


def combine_all(dataset: ReIDDataset, junk_pids: Iterable[int] = ()) -> ReIDDataset:
    """Train on every image: query and gallery join the train split (the papers' protocol for
    a source dataset, e.g. all 126,441 MSMT17 images of 4,101 ids; ICCV'19 footnote 7,
    TPAMI'21 Sec. 4.2). Their identities (query shares gallery's) become classes after the
    train ones; ``junk_pids`` (Market-1501's distractors 0 and junk -1) stay out. Query and
    gallery are kept as they are, so testing on them afterwards is testing on training data.
    """
    offset = dataset.num_train_pids
    junk = set(junk_pids)
    test_pids = sorted({s.pid for s in (*dataset.query, *dataset.gallery)} - junk)
    mapping = {pid: offset + i for i, pid in enumerate(test_pids)}
    added = [
        s._replace(pid=mapping[s.pid])
        for s in (*dataset.query, *dataset.gallery)
        if s.pid in mapping
    ]
    extra = {**dataset.extra, "combineall": True}
    return ReIDDataset(dataset.name, dataset.train + added, dataset.query, dataset.gallery, extra)


def check_splits(name: str, splits: Iterable[tuple[str, list[Sample]]]) -> None:
    """Every split must be non-empty."""
    for split, items in splits:
        if not items:
            raise DatasetLayoutError(f"{name}: the {split} split is empty")
