"""Market-1501 parser on the tiny synthetic world (written in the real Market-1501 layout)."""

from __future__ import annotations

from pathlib import Path

from omnireid.data.datasets import load_dataset
from omnireid.data.datasets.market1501 import market1501
from tests.conftest import TINY_TRAIN_IDS, TINY_TRAIN_IMAGES


def test_splits_ids_and_cameras(tiny_world: Path) -> None:
    ds = market1501(tiny_world)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (TINY_TRAIN_IMAGES, 32, 69)
    assert sorted({s.pid for s in ds.train}) == list(range(TINY_TRAIN_IDS))  # relabelled
    assert sum(s.pid == 0 for s in ds.gallery) == 5  # distractors stay in the gallery
    assert {s.camid for s in ds.train} == {0, 1, 2, 3}  # c1..c4 -> 0-based
    assert load_dataset("market1501", tiny_world.parent).summary() == ds.summary()


def test_combineall_adds_the_test_identities_without_the_distractors(tiny_world: Path) -> None:
    ds = market1501(tiny_world, combineall=True)
    # 8 test ids (query 32 + gallery 64 images, distractors left out) after the 12 train ids
    assert len(ds.train) == TINY_TRAIN_IMAGES + 32 + 64
    assert sorted({s.pid for s in ds.train}) == list(range(TINY_TRAIN_IDS + 8))
    assert len(ds.gallery) == 69 and ds.extra["combineall"]
