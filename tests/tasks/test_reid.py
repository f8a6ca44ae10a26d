"""The re-ID task: which data a run learns from and is tested on, and what a run leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omnireid.config import load_config
from omnireid.errors import ConfigError, TrainingError
from omnireid.models import build, load_for_inference
from omnireid.models.mutual import MutualPair
from omnireid.models.spec import file_sha256, load_spec
from omnireid.preprocessing import Preprocessing
from omnireid.tasks import fit_from_config
from omnireid.tasks.reid import accuracy, load_datasets
from tests.conftest import TINY_TRAIN_IDS, tiny_training
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
    duke: Path, tiny_world: Path
) -> None:
    config = load_config(
        None,
        [
            "data.dataset=dukemtmcreid",
            f"data.root={duke}",
            f'data.extra_sources=["dukemtmcreid={duke}"]',
            "data.target=market1501",
            f"data.target_root={tiny_world}",
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
    with pytest.raises(ConfigError, match="name=root"):
        load_datasets(load_config(None, [*base, 'data.extra_sources=["dukemtmcreid"]']))
    with pytest.raises(ConfigError, match="target_root"):
        load_datasets(load_config(None, [*base, "data.target=market1501"]))


def test_accuracy_of_single_and_stacked_logits() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    pids = torch.tensor([0, 1, 1, 1])
    assert accuracy(logits, None, pids) == {"acc": 0.75}
    stacked = torch.stack([logits, -logits])  # second network gets 1 of 4 right
    assert accuracy(stacked, None, pids) == {"acc": 0.5}


def test_a_run_stores_its_preprocessing_and_test_settings(tiny_world: Path, tmp_path: Path):
    overrides = tiny_training(tiny_world, tmp_path, "test.metric=cosine")
    records = fit_from_config(load_config(None, overrides))
    assert {"rank1", "mAP", "acc", "loss", "ce"} <= set(records[-1])
    spec = load_spec(tmp_path / "epoch-0001")
    assert spec.preprocessing == Preprocessing(64, 32)  # RGB, [0, 1], ImageNet, stretch, L2
    assert spec.config["test"]["metric"] == "cosine" and spec.num_classes == TINY_TRAIN_IDS
    assert (spec.epoch, spec.task, spec.feature_dim, spec.provenance.trained_on) == (
        1,
        "reid",
        512,
        "market1501",
    )
    assert spec.weights_sha256 == file_sha256(tmp_path / "epoch-0001" / "model.safetensors")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["rank1"] == records[-1]["rank1"]
    model, pre = load_for_inference(tmp_path)
    assert pre.input_size == (64, 32) and model.arch == "osnet_x0_25"


def test_mutual_training_reports_ensemble_and_single_model(tiny_world: Path, tmp_path: Path):
    overrides = tiny_training(tiny_world, tmp_path, "model.mutual=true", "optim.fixbase_epochs=1")
    records = fit_from_config(load_config(None, overrides))
    assert {"ce_1", "ce_2", "mutual_1", "mutual_2", "rank1", "model1_rank1"} <= set(records[0])
    assert load_spec(tmp_path / "epoch-0001").mutual is True
    pair, _ = load_for_inference(tmp_path)  # the paper's ensemble: both features concatenated
    assert isinstance(pair, MutualPair) and pair.feature_dim == 1024
    with torch.no_grad():
        assert pair(torch.randn(2, 3, 64, 32)).shape == (2, 1024)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("test.metric=manhattan", "test.metric"),
        ("data.batch_size=512", "larger than"),
        ("optim.schedule=multistep", "milestones"),
        ("train.task=detection", "train.task must be one of"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(
    tiny_world: Path, tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        fit_from_config(load_config(None, tiny_training(tiny_world, tmp_path, override)))
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_model_options_and_bnneck_travel_with_the_checkpoint(tiny_world: Path, tmp_path: Path):
    overrides = tiny_training(
        tiny_world, tmp_path, 'model.options={"streams": 2}', "model.bnneck=true"
    )
    fit_from_config(load_config(None, overrides))
    assert load_spec(tmp_path / "epoch-0001").options == {"streams": 2, "bnneck": True}
    model, _ = load_for_inference(tmp_path)
    assert len(model.conv2[0].conv2) == 2 and model.bnneck is not None
    with pytest.raises(ConfigError, match=r"model.arch/model.options.*does not take.*layers"):
        fit_from_config(
            load_config(
                None,
                tiny_training(
                    tiny_world,
                    tmp_path / "bad",
                    "model.arch=osnet_ain_x0_25",
                    'model.options={"layers": [3, 8, 6]}',
                ),
            )
        )


def test_triplet_warmup_and_the_collapse_statistics_are_logged(tiny_world: Path, tmp_path: Path):
    overrides = tiny_training(
        tiny_world,
        tmp_path,
        "loss.triplet_weight=0.5",
        "loss.triplet_warmup_epochs=2",
        "data.num_instances=4",
        "optim.max_epoch=3",
        "train.collapse_spread=100",  # every epoch "collapses": the detector must say so
    )
    records = fit_from_config(load_config(None, overrides))
    assert [r["triplet_weight"] for r in records] == [0.0, 0.25, 0.5]
    assert "triplet" not in records[0] and records[2]["triplet"] > 0  # weight 0: no term
    for r in records:
        assert 0 < r["feat_spread"] < 100 and 0 <= r["active_triplets"] <= 1
        assert r["collapsed"] == 1.0
    stop = [*overrides, "train.collapse=stop", f"train.out_dir={tmp_path / 'stop'}"]
    with pytest.raises(TrainingError, match="epoch 1: the embedding has collapsed"):
        fit_from_config(load_config(None, stop))


def test_the_triplet_term_can_start_after_some_epochs_of_ce_alone(tiny_world: Path, tmp_path):
    overrides = tiny_training(
        tiny_world,
        tmp_path,
        "loss.triplet_weight=0.5",
        "loss.triplet_start_epoch=2",
        "loss.triplet_warmup_epochs=0",
        "data.num_instances=4",
        "optim.max_epoch=3",
    )
    records = fit_from_config(load_config(None, overrides))
    assert [r["triplet_weight"] for r in records] == [0.0, 0.0, 0.5]
    assert "triplet" not in records[1] and records[2]["triplet"] > 0
    bad = [*overrides, "loss.triplet_start_epoch=-1", f"train.out_dir={tmp_path / 'bad'}"]
    with pytest.raises(
        ConfigError, match=r"loss\.triplet_start_epoch must be an integer >= 0, got -1"
    ):
        fit_from_config(load_config(None, bad))


def test_a_time_budget_ends_the_run_early_with_its_evaluation(tiny_world: Path, tmp_path: Path):
    overrides = tiny_training(
        tiny_world,
        tmp_path,
        "optim.max_epoch=1000",
        "train.budget_minutes=0.06",  # 3.6 s: a handful of tiny epochs
        "train.budget_reserve_minutes=0.01",
    )
    records = fit_from_config(load_config(None, overrides))
    assert 1 <= len(records) < 1000 and "rank1" in records[-1]
    assert all("rank1" not in r for r in records[:-1])  # evaluated once, at the end
    if len(records) > 1:  # a loaded machine may fit only one epoch in 3.6 s
        assert records[0]["lr"] > records[-1]["lr"]  # cosine over time
    # run again: the finished run is kept as it is, not trained further or restarted
    log = (tmp_path / "log.jsonl").read_text()
    assert fit_from_config(load_config(None, overrides)) == []
    assert (tmp_path / "log.jsonl").read_text() == log
    with pytest.raises(ConfigError, match=r"needs optim\.schedule=cosine"):
        fit_from_config(
            load_config(
                None,
                [
                    *overrides,
                    "optim.schedule=multistep",
                    "optim.milestones=[5]",
                    f"train.out_dir={tmp_path / 'other'}",
                ],
            )
        )


def test_dataset_statistics_normalise_training_and_travel_with_the_weights(
    tiny_world: Path, tmp_path: Path
):
    """ICCV'19 Table 12a: the train images' own mean and std instead of ImageNet's."""
    from omnireid.data.datasets import load_dataset
    from omnireid.data.transforms import compute_mean_std

    overrides = tiny_training(tiny_world, tmp_path, "data.normalization=dataset")
    fit_from_config(load_config(None, overrides))
    train = load_dataset("market1501", tiny_world).train
    mean, std = compute_mean_std([s.path for s in train], 64, 32)
    _, pre = load_for_inference(tmp_path)
    assert pre.mean == pytest.approx(mean) and pre.std == pytest.approx(std)
    assert pre.mean != pytest.approx((0.485, 0.456, 0.406), abs=1e-3)
    with pytest.raises(ConfigError, match=r"data\.normalization must be"):
        bad = [*overrides, "data.normalization=per_image", f"train.out_dir={tmp_path / 'x'}"]
        fit_from_config(load_config(None, bad))


def test_a_run_started_from_other_weights_records_what_loaded(tiny_world: Path, tmp_path: Path):
    start = tmp_path / "plain.pt"
    torch.save(build("osnet_x0_25", num_classes=1000).state_dict(), start)
    out = tmp_path / "ain"
    overrides = tiny_training(
        tiny_world, out, "model.arch=osnet_ain_x0_25", f"model.weights={start}"
    )
    fit_from_config(load_config(None, overrides))
    init = load_spec(out / "epoch-0001").provenance.init
    assert init.weights == str(start) and init.fresh == 10  # 4 new INs (2 each), classifier
    assert set(init.fresh_groups) == {
        "conv2.0.IN",
        "conv2.1.IN",
        "conv3.1.IN",
        "conv4.0.IN",
        "classifier",
    }
    assert init.backbone_share > 0.99


def test_a_start_that_fits_little_stops_with_one_line(tiny_world: Path, tmp_path: Path, capsys):
    from omnireid.cli import main

    start = tmp_path / "wide.pt"
    torch.save(build("osnet_x0_5", num_classes=1000).state_dict(), start)
    args = ["train", *tiny_training(tiny_world, tmp_path / "run", f"model.weights={start}")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "wide.pt fits only" in err[0] and "min_loaded_share" in err[0]
    assert main([*args, "model.min_loaded_share=1.5"]) == 2
    assert "within [0, 1]" in capsys.readouterr().err
