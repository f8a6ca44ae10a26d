"""Shared fixtures: paths into ../shared (real papers' data and weights), skipped when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MARKET_MINI = SHARED / "data" / "market1501-mini" / "Market-1501-v15.09.15"
MARKET_FULL = SHARED / "data" / "market1501" / "Market-1501-v15.09.15"
WEIGHTS = SHARED / "weights"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (../shared is not beside this checkout)")
    return path


@pytest.fixture
def market_mini() -> Path:
    return _require(MARKET_MINI, "the Market-1501 mini subset")


@pytest.fixture
def market_full() -> Path:
    return _require(MARKET_FULL, "the full Market-1501 benchmark")


@pytest.fixture
def market_weights() -> Path:
    return _require(WEIGHTS / "osnet_x0_25_market1501.pt", "the OSNet x0.25 Market-1501 checkpoint")


@pytest.fixture
def msmt_weights() -> Path:
    return _require(WEIGHTS / "osnet_x0_25_msmt17.pth", "the OSNet x0.25 MSMT17 checkpoint")


def tiny_training(root: Path, out_dir: Path, *extra: str) -> list[str]:
    """Config overrides for a one-epoch, 64x32, CPU training run on ``root`` (for tests)."""
    return [
        f"data.root={root}",
        "data.height=64",
        "data.width=32",
        "data.batch_size=16",
        "data.workers=0",
        "optim.max_epoch=1",
        "optim.schedule=cosine",
        f"train.out_dir={out_dir}",
        *extra,
    ]
