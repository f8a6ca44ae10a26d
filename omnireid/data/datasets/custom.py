"""Your own data, as a folder tree or a CSV file.

Folder layout, ``custom("ROOT")``::

    ROOT/train/PID/*.jpg      PID: a folder named by an integer, e.g. 0007/
    ROOT/query/PID/*.jpg      camera: a ``c<N>`` token in the file name, between the name's
    ROOT/gallery/PID/*.jpg    start/end and ``_``, ``-`` or ``.``: ``c2_0001.jpg``, ``f12_c3.jpg``

CSV file, ``custom("my_data.csv")``: a header ``split,path,pid,camid`` (other columns are
ignored), one image a row; ``split`` is train, query or gallery, ``path`` is absolute or
relative to the CSV's folder, ``pid`` and ``camid`` are integers. An image listed twice (the
same file, in one split or two, with the same labels or not) is refused, naming the lines:
a copy would count twice in training or in the ranking, or be its own match.

Camera numbers are mapped to 0..C-1 in sorted order over all splits, so 0- and 1-based
numbering both work; train pids are relabelled, query/gallery pids kept. The train split may
be empty (a set only to evaluate on); query and gallery may not. Query ids with no
gallery image, or whose gallery images all come from the query image's own camera (so
no query of theirs can be evaluated), raise ``DatasetLayoutError`` listing them.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

from omnireid.data.datasets.base import (
    DatasetLayoutError,
    ReIDDataset,
    Sample,
    check_splits,
    folder_images,
    relabel,
    require_dir,
)

SPLITS = ("train", "query", "gallery")
CAM_TOKEN = re.compile(r"(?:^|[_\-.])c(\d+)(?=$|[_\-.])")
COLUMNS = ("split", "path", "pid", "camid")
Splits = dict[str, list[Sample]]


def read_folders(root: Path) -> Splits:
    """Samples of ``ROOT/{train,query,gallery}/PID/*.jpg``, with the cameras as named."""
    splits: Splits = {}
    bad = []
    for split in SPLITS:
        folder = require_dir(root / split, f"the {split}/ folder of ROOT/{split}/PID/*.jpg")
        bad += [f"{split}/{p.name} (not in a PID folder)" for p in folder_images(folder)]
        splits[split] = []
        for pid_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if not (pid_dir.name.isascii() and pid_dir.name.isdigit()):
                bad.append(f"{split}/{pid_dir.name}/ (PID folders are named by integers)")
                continue
            for img in folder_images(pid_dir):
                m = CAM_TOKEN.search(img.stem)
                if not m:
                    bad.append(f"{split}/{pid_dir.name}/{img.name} (no c<N> camera token)")
                    continue
                splits[split].append(Sample(str(img), int(pid_dir.name), int(m.group(1))))
    if bad:
        raise DatasetLayoutError(f"{len(bad)} unexpected entries under {root}, e.g. {bad[:5]}")
    return splits


def read_csv(path: Path) -> Splits:
    """Samples of a ``split,path,pid,camid`` CSV file, with the cameras as written."""
    splits: Splits = {split: [] for split in SPLITS}
    missing = []
    lines: dict[str, list[int]] = defaultdict(list)  # each image's CSV lines
    with path.open(newline="") as f:
        reader = csv.DictReader(f, restval="")
        if not set(COLUMNS) <= set(reader.fieldnames or ()):
            raise DatasetLayoutError(
                f"{path}: expected a header with columns {','.join(COLUMNS)}; found "
                f"{reader.fieldnames}"
            )
        for lineno, row in enumerate(reader, start=2):
            split, pid, cam = (row[c].strip() for c in ("split", "pid", "camid"))
            digits = pid.isascii() and cam.isascii()  # "²".isdigit() is True, int("²") fails
            if (
                not digits
                or split not in SPLITS
                or not pid.isdigit()
                or not cam.lstrip("-").isdigit()
            ):
                raise DatasetLayoutError(
                    f"{path}:{lineno}: expected split in {SPLITS} and integer pid, camid; "
                    f"found {row}"
                )
            img = path.parent / row["path"].strip()  # an absolute path replaces the parent
            if not img.is_file():
                missing.append(str(img))
            else:
                lines[str(img.resolve())].append(lineno)
            splits[split].append(Sample(str(img), int(pid), int(cam)))
    if missing:
        raise DatasetLayoutError(
            f"{len(missing)} image(s) listed in {path} do not exist, e.g. {missing[:5]}"
        )
    twice = [(img, at) for img, at in lines.items() if len(at) > 1]
    if twice:
        shown = "; ".join(f"{img} (lines {', '.join(map(str, at))})" for img, at in twice[:3])
        raise DatasetLayoutError(
            f"{path} lists {len(twice)} image(s) more than once, e.g. {shown}: list each image "
            "once, in one split"
        )
    return splits


def check_evaluable(query: list[Sample], gallery: list[Sample]) -> None:
    """Every query needs a gallery image of its id from another camera."""
    gallery_cams: dict[int, set[int]] = defaultdict(set)
    for s in gallery:
        gallery_cams[s.pid].add(s.camid)
    absent = sorted({s.pid for s in query if s.pid not in gallery_cams})
    same_cam = sorted(
        {s.pid for s in query if s.pid in gallery_cams and not gallery_cams[s.pid] - {s.camid}}
    )
    problems = []
    if absent:
        problems.append(f"{len(absent)} query id(s) have no gallery image: {absent[:20]}")
    if same_cam:
        problems.append(
            f"{len(same_cam)} query id(s) have a query image whose gallery matches all come "
            f"from its own camera, so it can never be evaluated: {same_cam[:20]}"
        )
    if problems:
        raise DatasetLayoutError("; ".join(problems))


def custom(root: str | Path) -> ReIDDataset:
    """Parse a folder tree ``ROOT/{train,query,gallery}/PID/`` or a ``.csv`` file."""
    root = Path(root).expanduser()
    if root.suffix.lower() == ".csv":
        if not root.is_file():
            raise DatasetLayoutError(f"expected the CSV file {root}; it does not exist")
        splits = read_csv(root)
    else:
        splits = read_folders(root)
    # A set to evaluate on (a site's own cameras) may have no train split
    check_splits("custom", [(k, v) for k, v in splits.items() if k != "train"])
    cam_ids = {
        cam: i for i, cam in enumerate(sorted({s.camid for v in splits.values() for s in v}))
    }
    train, query, gallery = (
        [s._replace(camid=cam_ids[s.camid]) for s in splits[split]] for split in SPLITS
    )
    check_evaluable(query, gallery)
    extra = {"cameras": sorted(cam_ids)}  # the original camera number of each 0-based id
    return ReIDDataset("custom", relabel(train), query, gallery, extra)
