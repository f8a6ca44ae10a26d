"""The synthetic re-ID world: layout, counts, determinism, impostors, camera styles, labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnireid.data.datasets import load_dataset
from omnireid.data.synthetic import (
    ATTRIBUTES,
    LOCAL_TRAITS,
    Identity,
    WorldExistsError,
    generate_world,
    identity_attributes,
    read_attributes,
)

# 4 train ids, 3 test ids, 3 cameras, 2 images per id and camera, 2 distractors:
# train 4*3*2 = 24, query 3*3 = 9 (one per id and camera), gallery 3*3*2 + 2 = 20.
SMALL = dict(
    num_ids_train=4,
    num_ids_test=3,
    images_per_id_per_cam=2,
    num_cams=3,
    num_distractors=2,
    impostor_fraction=0.5,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(tmp_path_factory.mktemp("world"), **SMALL, seed=0)


def manifest_of(base: Path) -> dict:
    return json.loads((base / "world.json").read_text())


def image_bytes(base: Path) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.jpg"))}


def test_market_parser_counts(world: Path) -> None:
    ds = load_dataset("market1501", world.parent)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (24, 9, 20)
    assert ds.num_train_pids == 4 and ds.num_train_cams == 3
    assert sorted({s.pid for s in ds.train}) == [0, 1, 2, 3]  # 0001..0004 relabelled
    assert {s.pid for s in ds.query} == {5, 6, 7}
    assert {s.pid for s in ds.gallery} == {0, 5, 6, 7}
    assert {s.camid for s in ds.gallery} == {0, 1, 2}
    with Image.open(ds.query[0].path) as img:
        assert (img.mode, img.size) == ("RGB", (64, 128))


def test_train_test_disjoint_and_cross_camera_matches(world: Path) -> None:
    ds = load_dataset("market1501", world)
    train_pids = {int(Path(s.path).name[:4]) for s in ds.train}
    assert train_pids == {1, 2, 3, 4}
    assert train_pids.isdisjoint({s.pid for s in ds.query} | {s.pid for s in ds.gallery})
    for q in ds.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in ds.gallery)


def test_distractors_in_gallery_only(world: Path) -> None:
    ds = load_dataset("market1501", world)
    assert sum(s.pid == 0 for s in ds.gallery) == 2
    assert all(s.pid != 0 for s in ds.query)
    assert len(list((world / "bounding_box_train").glob("0000_*"))) == 0


def test_same_seed_byte_identical_other_seed_differs(world: Path, tmp_path: Path) -> None:
    again = generate_world(tmp_path / "a", **SMALL, seed=0)
    other = generate_world(tmp_path / "b", **SMALL, seed=1)
    reference = image_bytes(world)
    assert image_bytes(again) == reference
    for name in ("world.json", "attributes.csv"):
        assert (again / name).read_bytes() == (world / name).read_bytes()
    different = image_bytes(other)
    assert different.keys() == reference.keys()  # same names, different pixels
    assert sum(different[k] != reference[k] for k in reference) == len(reference)
    assert manifest_of(other)["identities"] != manifest_of(world)["identities"]


def test_impostors_differ_in_exactly_one_local_trait(world: Path) -> None:
    rows = {r["pid"]: r for r in manifest_of(world)["identities"]}
    impostors = [r for r in rows.values() if r["impostor_of"] is not None]
    # round(0.5 * 4) = 2 in train; round(0.5 * 3) = 2 capped at 3 // 2 = 1 in test.
    assert sorted(r["split"] for r in impostors) == ["test", "train", "train"]
    for r in impostors:
        base = rows[r["impostor_of"]]
        assert base["split"] == r["split"] and base["impostor_of"] is None
        changed = {k for k in r["traits"] if r["traits"][k] != base["traits"][k]}
        assert changed == {r["impostor_trait"]} and r["impostor_trait"] in LOCAL_TRAITS


def test_no_impostors_when_fraction_is_zero(tmp_path: Path) -> None:
    base = generate_world(tmp_path, **{**SMALL, "impostor_fraction": 0.0})
    assert all(r["impostor_of"] is None for r in manifest_of(base)["identities"])


def test_camera_styles_differ(world: Path) -> None:
    # The two leftmost pixel columns are background; average them over each camera's images.
    edges: dict[int, list[np.ndarray]] = {}
    for path in world.rglob("*.jpg"):
        cam = int(path.name.split("_c")[1][0])
        with Image.open(path) as img:
            edges.setdefault(cam, []).append(np.asarray(img, dtype=np.float64)[:, :2].mean((0, 1)))
    means = {cam: np.mean(v, axis=0) for cam, v in edges.items()}
    assert sorted(means) == [1, 2, 3]
    for a in means:
        for b in means:
            if a < b:
                assert np.abs(means[a] - means[b]).max() > 15, (a, b, means[a], means[b])
    cameras = manifest_of(world)["cameras"]
    assert len(cameras) == 3 and len({json.dumps(c, sort_keys=True) for c in cameras}) == 3


def test_attribute_labels_for_every_image(world: Path) -> None:
    labels = read_attributes(world)
    assert set(labels) == set(image_bytes(world))  # 24 + 9 + 20 rows, one per image
    assert len(labels) == 53
    manifest = manifest_of(world)
    assert manifest["attributes"] == ATTRIBUTES
    traits = {r["pid"]: Identity(**r["traits"]) for r in manifest["identities"]}
    for name, values in labels.items():
        pid = int(Path(name).name[:4])
        assert list(values) == list(ATTRIBUTES)
        if pid > 0:
            assert values == identity_attributes(traits[pid])


def test_existing_world_reused_or_refused(world: Path, tmp_path: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in world.rglob("*")}
    assert generate_world(world.parent, **SMALL, seed=0) == world
    assert {p: p.stat().st_mtime_ns for p in world.rglob("*")} == before
    with pytest.raises(WorldExistsError, match="seed"):
        generate_world(world.parent, **SMALL, seed=3)
    with pytest.raises(WorldExistsError, match="num_cams"):
        generate_world(world.parent, **{**SMALL, "num_cams": 4})
    (tmp_path / "Market-1501-v15.09.15").mkdir()
    with pytest.raises(WorldExistsError, match="no world"):
        generate_world(tmp_path, **SMALL)


@pytest.mark.parametrize("bad", [{"num_cams": 1}, {"num_cams": 7}, {"impostor_fraction": 0.6}])
def test_invalid_parameters(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        generate_world(tmp_path, **{**SMALL, **bad})
    assert not any(tmp_path.iterdir())
