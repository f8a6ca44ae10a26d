"""The built-in synthetic re-ID world: drawn pedestrians seen by cameras with their own styles.

``generate_world(root)`` writes a Market-1501 layout (``load_dataset("market1501", root)``
parses it unchanged) and, beside the split folders, ``world.json`` (parameters, camera styles,
the trait table per identity) and ``attributes.csv`` (binary attributes per image).

The people and the cameras (traits, impostors, camera styles, drawing) are in
``omnireid.data.pedestrians``; this module plans the images and writes them.
All randomness comes from ``np.random.default_rng`` seeded by (seed, purpose, ids): the same
seed gives byte-identical files, whatever else the process has done.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from omnireid.data.datasets.market1501 import FOLDER, SPLIT_DIRS
from omnireid.data.pedestrians import (
    ATTRIBUTES,
    HEIGHT,
    LOCAL_TRAITS,
    MAX_CAMS,
    WIDTH,
    CameraStyle,
    Identity,
    background,
    camera_styles,
    identity_attributes,
    make_impostor,
    random_identity,
    render,
)

JPEG_QUALITY = 90
FORMAT_VERSION = 1
# Seed-stream tags, so each purpose draws from its own generator (2: camera styles).
_IDS, _IMAGE, _DISTRACTOR = 1, 3, 4

__all__ = [
    "ATTRIBUTES",
    "LOCAL_TRAITS",
    "MAX_CAMS",
    "Identity",
    "WorldExistsError",
    "generate_world",
    "identity_attributes",
    "read_attributes",
    "world_manifest",
]


def _split_identities(
    num_ids: int, impostor_fraction: float, seed: int, split: int
) -> list[tuple[Identity, int | None, str | None]]:
    """``num_ids`` (identity, index of its original or None, changed trait) in a shuffled order."""
    rng = np.random.default_rng([seed, _IDS, split])
    num_imp = min(round(impostor_fraction * num_ids), num_ids // 2)
    originals = [random_identity(rng) for _ in range(num_ids - num_imp)]
    bases = rng.choice(len(originals), size=num_imp, replace=False)
    rows: list[tuple[Identity, int | None, str | None]] = [(o, None, None) for o in originals]
    for b in bases:
        ident, trait = make_impostor(originals[int(b)], rng)
        rows.append((ident, int(b), trait))
    order = [int(i) for i in rng.permutation(num_ids)]  # new position -> old index
    position = {old: new for new, old in enumerate(order)}
    moved = (rows[old] for old in order)
    return [(ident, None if b is None else position[b], trait) for ident, b, trait in moved]


class WorldExistsError(FileExistsError):
    """The target folder already holds a different world (or something that is not one)."""


def world_manifest(
    *,
    num_ids_train: int,
    num_ids_test: int,
    images_per_id_per_cam: int,
    num_cams: int,
    num_distractors: int,
    impostor_fraction: float,
    seed: int,
) -> dict:
    """The ``world.json`` content: parameters, attribute names, cameras and the trait table.

    Identities are listed by pid (train ``1..num_ids_train``, then test); an impostor names the
    pid it copies (``impostor_of``) and the one local trait it changes (``impostor_trait``).
    """
    if not 2 <= num_cams <= MAX_CAMS:
        raise ValueError(f"num_cams must be in 2..{MAX_CAMS}, got {num_cams}")
    if min(num_ids_train, num_ids_test, images_per_id_per_cam) < 1 or num_distractors < 0:
        raise ValueError("id and image counts must be >= 1 (num_distractors >= 0)")
    if num_ids_train + num_ids_test > 9999 or not 0.0 <= impostor_fraction <= 0.5:
        raise ValueError("at most 9999 ids in all, and impostor_fraction must be in [0, 0.5]")
    params = {
        "num_ids_train": num_ids_train,
        "num_ids_test": num_ids_test,
        "images_per_id_per_cam": images_per_id_per_cam,
        "num_cams": num_cams,
        "num_distractors": num_distractors,
        "impostor_fraction": impostor_fraction,
        "seed": seed,
    }
    identities = []
    for split, (count, offset) in enumerate(
        [(num_ids_train, 1), (num_ids_test, num_ids_train + 1)]
    ):
        for i, (ident, base, trait) in enumerate(
            _split_identities(count, impostor_fraction, seed, split)
        ):
            identities.append(
                {
                    "pid": offset + i,
                    "split": ("train", "test")[split],
                    "impostor_of": None if base is None else offset + base,
                    "impostor_trait": trait,
                    "traits": asdict(ident),
                }
            )
    return {
        "format_version": FORMAT_VERSION,
        "params": params,
        "image_size": [HEIGHT, WIDTH],
        "jpeg_quality": JPEG_QUALITY,
        "attributes": ATTRIBUTES,
        "local_traits": list(LOCAL_TRAITS),
        "cameras": [asdict(s) for s in camera_styles(seed)[:num_cams]],
        "identities": identities,
    }


def _plan(manifest: dict) -> list[tuple[str, int, int, int, Identity]]:
    """Every image as (split folder, pid, camera 1-based, index k, identity), in writing order.

    Test ids get one query per camera (k = 0) and ``images_per_id_per_cam`` gallery images per
    camera, so each query has gallery matches in every other camera.
    """
    p = manifest["params"]
    ipc, cams = p["images_per_id_per_cam"], range(1, p["num_cams"] + 1)
    jobs = []
    for row in manifest["identities"]:
        ident, pid = Identity(**row["traits"]), row["pid"]
        for cam in cams:
            if row["split"] == "train":
                jobs += [(SPLIT_DIRS["train"], pid, cam, k, ident) for k in range(ipc)]
            else:
                jobs.append((SPLIT_DIRS["query"], pid, cam, 0, ident))
                jobs += [(SPLIT_DIRS["gallery"], pid, cam, k, ident) for k in range(1, ipc + 1)]
    for d in range(p["num_distractors"]):
        ident = random_identity(np.random.default_rng([p["seed"], _DISTRACTOR, d]))
        jobs.append((SPLIT_DIRS["gallery"], 0, d % p["num_cams"] + 1, d, ident))
    return jobs


def generate_world(
    root: str | Path,
    *,
    num_ids_train: int = 100,
    num_ids_test: int = 50,
    images_per_id_per_cam: int = 5,
    num_cams: int = 4,
    num_distractors: int = 50,
    impostor_fraction: float = 0.2,
    seed: int = 0,
) -> Path:
    """Write a synthetic world under ``root``; returns ``root/Market-1501-v15.09.15``.

    Images: train ``num_ids_train * num_cams * images_per_id_per_cam``; query
    ``num_ids_test * num_cams``; gallery ``num_ids_test * num_cams * images_per_id_per_cam +
    num_distractors`` (pid 0000). The defaults give 2,000 + 200 + 1,050 images. An existing
    world with the same manifest is reused; any other content there raises
    ``WorldExistsError``. The folder is written beside and renamed into place when complete.
    """
    manifest = world_manifest(
        num_ids_train=num_ids_train,
        num_ids_test=num_ids_test,
        images_per_id_per_cam=images_per_id_per_cam,
        num_cams=num_cams,
        num_distractors=num_distractors,
        impostor_fraction=impostor_fraction,
        seed=seed,
    )
    manifest = json.loads(json.dumps(manifest))  # the form it takes on disk
    base = Path(root).expanduser() / FOLDER
    if base.exists():
        _check_existing(base, manifest)
        return base
    tmp = base.with_name(FOLDER + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in SPLIT_DIRS.values():
        (tmp / sub).mkdir(parents=True)
    styles = [CameraStyle(**{**s, "gain": tuple(s["gain"])}) for s in manifest["cameras"]]
    backdrops = [background(s, seed, c + 1) for c, s in enumerate(styles)]
    frames = [0] * (num_cams + 1)
    rows = []
    for sub, pid, cam, k, ident in _plan(manifest):
        frames[cam] += 25
        name = f"{pid:04d}_c{cam}s1_{frames[cam]:06d}_01.jpg"
        rng = np.random.default_rng([seed, _IMAGE, pid, cam, k])
        img = render(ident, styles[cam - 1], backdrops[cam - 1], rng)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
        (tmp / sub / name).write_bytes(buf.getvalue())
        rows.append([f"{sub}/{name}", pid, cam, *identity_attributes(ident).values()])
    with open(tmp / "attributes.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["image", "pid", "camera", *ATTRIBUTES])
        writer.writerows(rows)
    (tmp / "world.json").write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, base)
    return base


def _check_existing(base: Path, manifest: dict) -> None:
    path = base / "world.json"
    if not path.is_file():
        raise WorldExistsError(
            f"{base} exists but holds no world.json (not a synthetic world); "
            "remove it or generate under another root"
        )
    old = json.loads(path.read_text())
    if old != manifest:
        changed = sorted(
            k
            for k in {*old.get("params", {}), *manifest["params"]}
            if old.get("params", {}).get(k) != manifest["params"].get(k)
        )
        raise WorldExistsError(
            f"{base} holds a different synthetic world (differs in {changed or 'format'}); "
            "remove it or generate under another root rather than mixing worlds"
        )


def read_attributes(base: str | Path) -> dict[str, dict[str, int]]:
    """``attributes.csv`` of a world folder: ``"split_dir/file.jpg" -> {attribute: 0/1}``."""
    with open(Path(base) / "attributes.csv", newline="") as f:
        return {r["image"]: {a: int(r[a]) for a in ATTRIBUTES} for r in csv.DictReader(f)}
