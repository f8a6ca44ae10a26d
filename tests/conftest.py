"""Shared fixtures.

``tiny_world``: a small synthetic world in the real Market-1501 layout (deterministic, written
once per session), for every test that needs images but not real ones. The others read
../shared (the real Market-1501 and its mini subset, the reference checkpoints) and skip with
a reason when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omnireid.data.synthetic import generate_world

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MARKET_MINI = SHARED / "data" / "market1501-mini" / "Market-1501-v15.09.15"
MARKET_FULL = SHARED / "data" / "market1501" / "Market-1501-v15.09.15"
WEIGHTS = SHARED / "weights"

# The tiny world: 12 train ids x 4 cameras x 2 images = 96 train images; 8 test ids: 32
# queries, 64 gallery images + 5 distractors (pid 0)
TINY_WORLD = dict(
    num_ids_train=12, num_ids_test=8, images_per_id_per_cam=2, num_cams=4, num_distractors=5
)
TINY_TRAIN_IMAGES, TINY_TRAIN_IDS = 96, 12


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: takes more than ~10 s on a 2-core CPU (deselect with -m 'not slow')"
    )


# Modules that start OpenVINO, whose thread pool does not survive a fork: once it runs, a
# later test that forks DataLoader workers can crash the whole session. They run last.
FORK_UNSAFE_MODULES = (
    "test_openvino.py",
    "test_evaluate_backends.py",
    "test_auto.py",
    "test_quantize.py",
    "test_bench.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in FORK_UNSAFE_MODULES)  # stable: order kept


@pytest.fixture(autouse=True)
def _fp32_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs fp32 where the library would choose a precision ("auto"), so that
    features are PyTorch's to 1e-6 and no test starts OpenVINO by default (its thread pool
    does not survive the DataLoader forks of later tests); tests of "auto" itself delete
    ``OMNIREID_PRECISION`` or pass a precision."""
    monkeypatch.setenv("OMNIREID_PRECISION", "fp32")


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (../shared is not beside this checkout)")
    return path


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``Market-1501-v15.09.15`` folder of the tiny synthetic world (read-only: copy it
    before changing anything)."""
    return generate_world(tmp_path_factory.mktemp("tiny_world"), **TINY_WORLD)


@pytest.fixture(scope="session")
def toy_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain ``.pt`` state_dict of an untrained OSNet x0.25 with random BN statistics (for
    commands whose mechanics, not accuracy, a test checks)."""
    import torch

    from tests.deploy.helpers import trained_like

    path = tmp_path_factory.mktemp("toy_weights") / "osnet_x0_25_toy.pt"
    torch.save(trained_like("osnet_x0_25").state_dict(), path)
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
def imagenet_weights() -> Path:
    return _require(WEIGHTS / "osnet_x0_25_imagenet.pth", "the OSNet x0.25 ImageNet checkpoint")


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
