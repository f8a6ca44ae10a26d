"""combine_sources: train pids and cameras kept apart, evaluation on the first dataset."""

from __future__ import annotations

import pytest

from omnireid.data.datasets import ReIDDataset, Sample, combine_sources


def make(name: str, train: list[tuple[int, int]], cams: int) -> ReIDDataset:
    """A dataset with the given (pid, camid) train samples and cameras 0..cams-1 in the test."""
    samples = [Sample(f"{name}/{i}.jpg", pid, cam) for i, (pid, cam) in enumerate(train)]
    query = [Sample(f"{name}/q.jpg", 5, 0)]
    gallery = [Sample(f"{name}/g{c}.jpg", 5, c) for c in range(1, cams)]
    return ReIDDataset(name, samples, query, gallery)


def test_offsets_and_dsetid() -> None:
    a = make("a", [(0, 0), (1, 1)], cams=3)  # test cameras go up to 2
    b = make("b", [(0, 0), (1, 1), (2, 0)], cams=2)
    ds = combine_sources([a, b])
    assert ds.name == "a+b" and ds.extra["sources"] == ["a", "b"]
    assert [(s.pid, s.camid, s.dsetid) for s in ds.train] == [
        (0, 0, 0),
        (1, 1, 0),
        (2, 3, 1),  # b's pids start after a's 2 ids, its cameras after a's 3 cameras
        (3, 4, 1),
        (4, 3, 1),
    ]
    assert ds.num_train_pids == 5 and ds.num_train_cams == 4  # a's camera 2 is test-only
    assert ds.query == a.query and ds.gallery == a.gallery


def test_three_sources_and_single_source() -> None:
    sources = [make(n, [(0, 0), (1, 0)], cams=1) for n in "xyz"]
    assert [s.pid for s in combine_sources(sources).train] == [0, 1, 2, 3, 4, 5]
    assert combine_sources(sources[:1]).train == sources[0].train


def test_no_sources() -> None:
    with pytest.raises(ValueError, match="at least one dataset"):
        combine_sources([])
