"""The config edge: which data a training run learns from and which it is tested on."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnireid.config import load_config
from omnireid.run import load_datasets
from tests.data.datasets.test_dukemtmc import write_duke


@pytest.fixture
def duke(tmp_path: Path) -> Path:
    return write_duke(tmp_path)


def test_single_source_tests_on_itself(duke: Path) -> None:
    train, test = load_datasets(
        load_config(None, ["data.dataset=dukemtmcreid", f"data.root={duke}"])
    )
    assert train is test and train.num_train_pids == 3


def test_multi_source_is_one_classifier_tested_on_a_held_out_target(
    duke: Path, market_mini: Path
) -> None:
    config = load_config(
        None,
        [
            "data.dataset=dukemtmcreid",
            f"data.root={duke}",
            f'data.extra_sources=["dukemtmcreid={duke}"]',
            "data.target=market1501",
            f"data.target_root={market_mini}",
        ],
    )
    train, test = load_datasets(config)
    # two copies of the 3-identity source: 6 classes, second copy's ids and cameras shifted
    assert train.num_train_pids == 6
    assert sorted({s.dsetid for s in train.train}) == [0, 1]
    assert test.name == "market1501" and len(test.query) > 0
    assert {s.path for s in test.gallery}.isdisjoint(s.path for s in train.train)


def test_bad_entries_say_what_is_expected(duke: Path) -> None:
    base = ["data.dataset=dukemtmcreid", f"data.root={duke}"]
    with pytest.raises(ValueError, match="name=root"):
        load_datasets(load_config(None, [*base, 'data.extra_sources=["dukemtmcreid"]']))
    with pytest.raises(ValueError, match="target_root"):
        load_datasets(load_config(None, [*base, "data.target=market1501"]))
