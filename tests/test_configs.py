"""The recipes in configs/ load, validate, and say what the papers say."""

from pathlib import Path

import pytest

from omnireid.config import load_config
from omnireid.models import list_models

ROOT = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(ROOT.rglob("*.yaml"))
TPAMI = sorted((ROOT / "tpami").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_recipe_loads_and_names_a_known_architecture(path):
    config = load_config(path)
    assert config.model.arch in list_models()
    # TPAMI Sec. 4.2: the IN-placement search runs with batch 512; CIFAR follows Wide ResNet's
    # 128; every re-ID and attribute recipe uses 64
    batch = {"search_in_x1_0": 512, "cifar10_osnet_x1_0": 128, "cifar100_osnet_x1_0": 128}
    batch = batch.get(path.stem, 64)
    assert config.data.batch_size == batch and config.optim.weight_decay == 5e-4
    assert path.read_text().startswith("#")  # every recipe says where it comes from


@pytest.mark.parametrize("name", ["cifar10_osnet_x1_0", "cifar100_osnet_x1_0"])
def test_cifar_recipes_use_the_small_image_stem(name):
    assert load_config(ROOT / f"{name}.yaml").model.options == {"stem": "cifar"}


def test_from_scratch_recipe_is_the_papers():
    c = load_config(Path(CONFIGS[0]).parent / "scratch_market_x1_0.yaml")
    assert (c.optim.name, c.optim.lr, c.optim.max_epoch) == ("sgd", 0.065, 350)
    assert c.optim.milestones == (150, 225, 300)
    assert c.data.random_crop and c.data.random_patch and not c.data.random_erasing


def test_fine_tune_recipe_freezes_the_base_for_ten_epochs():
    c = load_config(Path(CONFIGS[0]).parent / "finetune_market_x1_0.yaml")
    assert (c.optim.name, c.optim.lr, c.optim.max_epoch) == ("amsgrad", 0.0015, 150)
    assert c.optim.milestones == (60, 120) and c.optim.fixbase_epochs == 10
    assert c.optim.open_layers == ("classifier",) and c.data.random_erasing


def test_best_recipe_is_supplementary_b():
    """ICCV Supp. B, Table 12f: DML + 0.5 triplet, cosine 250 epochs, random batches, cosine."""
    c = load_config(ROOT / "best_dml_triplet_market_x1_0.yaml")
    assert c.model.mutual and c.loss.triplet_weight == 0.5 and c.data.num_instances == 0
    assert (c.optim.schedule, c.optim.max_epoch, c.optim.fixbase_epochs) == ("cosine", 250, 10)
    assert c.loss.triplet_no_positive == "zero_distance" and c.test.metric == "cosine"


def test_there_is_a_config_per_rerunnable_tpami_cross_domain_row():
    # Table 7: 3 models x 2 directions; Table 9: +2 MSMT17 rows; Table 10: 2; Table 11: 3 x 4
    assert len(TPAMI) == 6 + 2 + 2 + 12
    names = {p.stem for p in TPAMI}
    assert {"table7_market_to_duke_ain", "table9_msmt17_to_market_ain"} <= names


@pytest.mark.parametrize("path", TPAMI, ids=lambda p: p.stem)
def test_tpami_cross_domain_recipe(path):
    """Sec. 4.2: cosine schedule, 100 epochs (50 for MSMT17), flip + colour jitter, no erasing,
    cosine distance, tested on a target that is not a source."""
    c = load_config(path)
    msmt_source = c.data.dataset == "msmt17"
    assert c.optim.max_epoch == (50 if msmt_source else 100)
    assert (c.optim.name, c.optim.lr, c.optim.schedule) == ("amsgrad", 0.0015, "cosine")
    assert c.optim.fixbase_epochs == 10 and c.data.flip and c.data.color_jitter
    assert not c.data.random_erasing and c.test.metric == "cosine"
    sources = {c.data.dataset} | {s.split("=")[0] for s in c.data.extra_sources}
    assert c.data.target not in sources
    assert c.data.combineall == msmt_source  # all 126,441 MSMT17 images when it is the source
    assert path.read_text().startswith("# TPAMI'21 ")


@pytest.mark.parametrize(
    "path", sorted((ROOT / "iccv").glob("table11_*.yaml")), ids=lambda p: p.stem
)
def test_iccv_supplementary_cross_domain_recipe(path):
    """Supp. A: OSNet-IBN, AMSGrad 0.0015, 150 epochs x0.1 every 60, flip + colour jitter, l2."""
    c = load_config(path)
    assert c.model.arch == "osnet_ibn_x1_0" and c.optim.max_epoch == 150
    assert c.optim.milestones == (60, 120) and c.optim.fixbase_epochs == 10
    assert c.data.color_jitter and not c.data.random_erasing and c.test.metric == "euclidean"
    assert c.data.combineall == (c.data.dataset == "msmt17") and c.data.target != c.data.dataset


# ICCV'19 Table 6, beta = 0.25: (height, width) -> R1 / mAP the config names
TABLE6_X0_25 = {(256, 128): "92.2 / 77.8", (192, 96): "91.6 / 76.1", (128, 64): "88.7 / 71.8",
                (64, 32): "79.1 / 56.0"}  # fmt: skip


def test_there_is_a_table6_x0_25_config_per_resolution():
    found = {
        (c.data.height, c.data.width) for c in map(load_config, (ROOT / "iccv").glob("table6_*"))
    }
    assert found == set(TABLE6_X0_25)


@pytest.mark.parametrize("size", sorted(TABLE6_X0_25), ids=lambda s: f"{s[0]}x{s[1]}")
def test_table6_x0_25_rows_fine_tune_from_imagenet_as_sec_4_1(size):
    """ICCV Sec. 4.1, fine-tuning: AMSGrad lr 0.0015, 150 epochs x0.1 every 60, base frozen 10
    epochs, flip + random erasing, label smoothing, l2 distance; from the ImageNet x0.25."""
    path = ROOT / "iccv" / f"table6_x0_25_{size[0]}x{size[1]}.yaml"
    c = load_config(path)
    assert c.model.arch == "osnet_x0_25" and c.model.weights.endswith("osnet_x0_25_imagenet.pth")
    assert (c.optim.name, c.optim.lr, c.optim.max_epoch) == ("amsgrad", 0.0015, 150)
    assert c.optim.milestones == (60, 120) and c.optim.gamma == 0.1
    assert c.optim.fixbase_epochs == 10 and c.optim.open_layers == ("classifier",)
    assert c.data.flip and c.data.random_erasing and not c.data.random_crop
    assert not c.data.color_jitter and c.loss.label_smoothing == 0.1
    assert c.test.metric == "euclidean" and c.loss.triplet_weight == 0
    assert f"Paper: R1 / mAP = {TABLE6_X0_25[size]}." in path.read_text()
