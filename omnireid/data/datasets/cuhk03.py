"""CUHK03 (Li et al., CVPR 2014) in the new protocol (Zhong et al., CVPR 2017): 767 train ids,
700 test ids, two camera views per camera pair.

Files needed, in ``ROOT/cuhk03/`` (ROOT may also be that folder itself):

- ``cuhk03_new_protocol_config_detected.mat`` (default) or
  ``cuhk03_new_protocol_config_labeled.mat`` (``labeled=True``): MATLAB v5 files with
  ``filelist`` (image file names), ``labels`` (pids), ``camId`` (1-based cameras) and
  ``train_idx``, ``query_idx``, ``gallery_idx`` (1-based indices into ``filelist``).
- the images: either already extracted as ``images_detected/`` or ``images_labeled/``
  beside the config, holding the ``filelist`` names (``1_001_1_01.png``: camera pair 1,
  person 001, view 1, image 01), or the official ``cuhk-03.mat`` (in ``ROOT/cuhk03/`` or
  ``ROOT/cuhk03/cuhk03_release/``), from which the missing folder is extracted once. The
  official file is MATLAB v7.3 (HDF5) and needs the optional ``h5py``; a v5 copy is read
  with scipy.

The classic 20-split protocol is not implemented.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat
from scipy.io.matlab import matfile_version

from omnireid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample, relabel

CONFIG = "cuhk03_new_protocol_config_{}.mat"
CONFIG_FIELDS = ("filelist", "labels", "camId", "train_idx", "query_idx", "gallery_idx")
RAW_MAT = ("cuhk-03.mat", "cuhk03_release/cuhk-03.mat")


def find_base(root: str | Path) -> Path:
    """``root`` or ``root/cuhk03``: whichever holds a new-protocol config file."""
    root = Path(root).expanduser()
    for base in (root, root / "cuhk03"):
        if any((base / CONFIG.format(kind)).is_file() for kind in ("detected", "labeled")):
            return base
    found = sorted(p.name for p in root.iterdir())[:20] if root.is_dir() else "nothing"
    raise DatasetLayoutError(
        f"expected {CONFIG.format('detected')} or {CONFIG.format('labeled')} in {root} or "
        f"{root / 'cuhk03'}; {root} contains: {found}"
    )


def is_v73(path: Path) -> bool:
    """Whether ``path`` is a MATLAB v7.3 (HDF5) file; non-.mat files raise naming it."""
    try:
        return matfile_version(path)[0] == 2
    except (ValueError, OSError) as e:
        raise DatasetLayoutError(f"cannot read {path} as a MATLAB file: {e}") from e


def read_mat(path: Path) -> dict[str, np.ndarray]:
    """Variables of a MATLAB v5 file; a v7.3 file raises naming it."""
    if is_v73(path):
        raise DatasetLayoutError(f"{path} is MATLAB v7.3 (HDF5); expected a v5 .mat file")
    try:
        return loadmat(path)
    except (ValueError, OSError) as e:
        raise DatasetLayoutError(f"cannot read {path} as a MATLAB v5 file: {e}") from e


def image_name(pair: int, person: int, column: int) -> str:
    """Official naming from 0-based cell indices: columns 0-4 are view 1, 5-9 view 2."""
    return f"{pair + 1}_{person + 1:03d}_{1 if column < 5 else 2}_{column + 1:02d}.png"


def iter_hdf5_images(path: Path, key: str) -> Iterator[tuple[str, np.ndarray]]:
    """``(file name, (H, W, 3) image)`` from a v7.3 ``cuhk-03.mat``, read with h5py."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            f"{path} is MATLAB v7.3 (HDF5); reading it needs h5py (pip install h5py), or "
            f"extract images_{key}/ beside the config files yourself"
        ) from e
    with h5py.File(path, "r") as f:
        if key not in f:
            raise DatasetLayoutError(f"{path} has no {key!r} cell array; found {list(f)}")
        for pair, pair_ref in enumerate(np.ravel(f[key][()])):
            cells = f[pair_ref][()].T  # HDF5 holds MATLAB's (persons, 10) as (10, persons)
            for (person, column), ref in np.ndenumerate(cells):
                img = f[ref][()]
                if img.ndim == 3:  # empty cells are stored as a 2-element shape vector
                    yield image_name(pair, person, column), img.transpose(2, 1, 0)


def iter_raw_images(path: Path, key: str) -> Iterator[tuple[str, np.ndarray]]:
    """``(file name, (H, W, 3) image)`` for every ``key`` image in ``cuhk-03.mat``."""
    if is_v73(path):
        yield from iter_hdf5_images(path, key)
        return
    mat = read_mat(path)
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetLayoutError(f"{path} has no {key!r} cell array; it holds {found}")
    for pair, cells in enumerate(mat[key].ravel()):
        for (person, column), img in np.ndenumerate(cells):
            if np.ndim(img) == 3:
                yield image_name(pair, person, column), np.asarray(img)


def extract_images(mat_path: Path, key: str, out_dir: Path) -> None:
    """Write the ``key`` images of ``cuhk-03.mat`` to ``out_dir`` as PNG files."""
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    count = 0
    for name, img in iter_raw_images(mat_path, key):
        Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(partial / name)
        count += 1
    if not count:
        shutil.rmtree(partial)
        raise DatasetLayoutError(f"{mat_path} holds no {key} images")
    partial.rename(out_dir)


def image_dir(base: Path, kind: str) -> Path:
    """``base/images_<kind>``, extracted from ``cuhk-03.mat`` first when missing."""
    folder = base / f"images_{kind}"
    if folder.is_dir():
        return folder
    raw = next((base / p for p in RAW_MAT if (base / p).is_file()), None)
    if raw is None:
        raise DatasetLayoutError(
            f"expected the extracted images {folder}/ or the official {base / RAW_MAT[0]} "
            f"(or {base / RAW_MAT[1]}) to extract them from; found neither"
        )
    extract_images(raw, kind, folder)
    return folder


def read_split(config: Path, images: Path) -> dict[str, list[Sample]]:
    """Train/query/gallery samples of a new-protocol config file."""
    mat = read_mat(config)
    missing = [f for f in CONFIG_FIELDS if f not in mat]
    if missing:
        raise DatasetLayoutError(f"{config} lacks the variable(s) {missing}")
    filelist = [str(np.ravel(x)[0]).strip() for x in mat["filelist"].ravel()]
    pids = mat["labels"].ravel().astype(int)
    cams = mat["camId"].ravel().astype(int) - 1
    if not len(filelist) == len(pids) == len(cams):
        raise DatasetLayoutError(
            f"{config}: filelist, labels and camId must have one entry per image; found "
            f"{len(filelist)}, {len(pids)} and {len(cams)}"
        )
    if (cams < 0).any():
        raise DatasetLayoutError(f"{config}: camId must be 1-based; found {cams.min() + 1}")
    splits = {}
    for split in ("train", "query", "gallery"):
        idx = mat[f"{split}_idx"].ravel().astype(int) - 1
        if idx.size == 0 or idx.min() < 0 or idx.max() >= len(filelist):
            raise DatasetLayoutError(
                f"{config}: {split}_idx must be non-empty 1-based indices into the "
                f"{len(filelist)} files of filelist"
            )
        splits[split] = [Sample(str(images / filelist[i]), int(pids[i]), int(cams[i])) for i in idx]
    absent = [s.path for items in splits.values() for s in items if not Path(s.path).is_file()]
    if absent:
        raise DatasetLayoutError(
            f"{len(absent)} image(s) named in {config} are missing from {images}, "
            f"e.g. {[Path(p).name for p in absent[:5]]}"
        )
    return splits


def cuhk03(root: str | Path, labeled: bool = False, classic_split: bool = False) -> ReIDDataset:
    """Parse CUHK03 (new 767/700 protocol) under ``root``; detected boxes unless ``labeled``."""
    if classic_split:
        raise NotImplementedError(
            "CUHK03's classic 20-split protocol (1,367 train / 100 test ids) is not "
            "implemented; use the new 767/700 protocol (classic_split=False)"
        )
    kind = "labeled" if labeled else "detected"
    base = find_base(root)
    config = base / CONFIG.format(kind)
    if not config.is_file():
        raise DatasetLayoutError(f"expected the {kind} protocol file {config}; it is missing")
    splits = read_split(config, image_dir(base, kind))
    name = "cuhk03_labeled" if labeled else "cuhk03"
    return ReIDDataset(name, relabel(splits["train"]), splits["query"], splits["gallery"])
