"""The model spec: it round-trips, and every format-1 ``meta.json`` migrates to what it said.

``meta_v1/`` holds format-1 files exactly as earlier code wrote them: ``run_*.json`` from tiny
runs of each task (reid started from other weights, a mutual pair, attributes, classify, an
adaptation, AdaBN, the IN search, a searched child, the Python ``adapt()``), ``zoo_*.json`` and
``card_*.json`` copied from the zoo before it moved to format 2 (the oldest of them stores only
size, mean and std, and no task).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from omnireid.config import load_config
from omnireid.errors import CheckpointError
from omnireid.models import load_for_inference
from omnireid.models.spec import (
    FORMAT_VERSION,
    InitRecord,
    ModelSpec,
    Provenance,
    SourceWeights,
    Split,
    card_spec_fields,
    load_spec,
    migrate_card,
)
from omnireid.models.zoo import read_entry
from omnireid.preprocessing import Preprocessing
from omnireid.tasks import fit_from_config
from tests.conftest import tiny_training

V1 = Path(__file__).parent / "meta_v1"


def _v1(name: str) -> dict:
    return json.loads((V1 / name).read_text())


def _spec(name: str) -> ModelSpec:
    return ModelSpec.from_dict(_v1(name), source=name)


def test_a_spec_round_trips_through_its_json():
    spec = ModelSpec(
        "osnet_x0_25",
        task="attributes",
        options={"streams": 2, "block_norms": [["in", "none"], ["none"], ["in"]]},
        num_classes=3,
        feature_dim=256,
        labels=("hat", "bag", "logo"),
        label_priors=(0.5, 0.25, 0.125),
        preprocessing=Preprocessing(128, 64, value_range=(0.0, 255.0), output_norm="none"),
        weights_sha256="ab" * 32,
        provenance=Provenance(
            trained_on="market1501+dukemtmcreid",
            adapted_from=SourceWeights("/w/source.pt", "cd" * 32, "adabn"),
            init=InitRecord("/w/imagenet.pth", "ef" * 32, 10, 2, 1, 0.99, {"classifier": 2}),
            split=Split("viper", 3),
        ),
        epoch=7,
        record={"epoch": 7, "mAP": 12.5},
        config={"data": {"height": 128}},
    )
    data = json.loads(spec.to_json())
    assert data["format_version"] == FORMAT_VERSION == 2
    assert ModelSpec.from_dict(data) == spec
    assert data["preprocessing"]["height"] == 128 and "height" not in data  # the size, once


def test_a_newer_or_damaged_spec_is_refused_naming_the_field(tmp_path):
    good = ModelSpec("osnet_x0_25", preprocessing=Preprocessing()).to_dict()
    with pytest.raises(CheckpointError, match=r"format 3 \(a newer omnireid wrote it"):
        ModelSpec.from_dict({**good, "format_version": 3})
    with pytest.raises(CheckpointError, match="num_classes must be int, got '751'"):
        ModelSpec.from_dict({**good, "num_classes": "751"})
    with pytest.raises(CheckpointError, match=r"unknown keys \['height'\]"):
        ModelSpec.from_dict({**good, "height": 256})
    with pytest.raises(CheckpointError, match="task must be one of"):
        ModelSpec.from_dict({**good, "task": "detection"})
    (tmp_path / "meta.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError, match=r"meta\.json is not valid JSON"):
        load_spec(tmp_path)
    assert load_spec(tmp_path / "nothing") is None


def test_a_reid_run_started_from_other_weights_migrates():
    spec = _spec("run_reid.json")
    assert (spec.arch, spec.task, spec.num_classes, spec.mutual) == (
        "osnet_x0_25",
        "reid",
        12,
        False,
    )
    assert spec.options == {"streams": 2, "bnneck": True} and spec.feature_dim == 512
    assert spec.preprocessing == Preprocessing(64, 32)
    assert (spec.epoch, spec.record["epoch"], spec.weights_sha256) == (1, 1, "")
    init = spec.provenance.init
    assert (init.weights, init.loaded, init.fresh, init.unused) == (
        "/tmp/oldfmt/osnet_x0_25_toy.pt",
        271,
        6,
        296,
    )
    assert init.backbone_share == 0.988048 and init.fresh_groups == {"bnneck": 4, "classifier": 2}
    assert spec.provenance.trained_on == "market1501" and spec.provenance.adapted_from is None
    assert spec.config == _v1("run_reid.json")["config"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run_mutual.json", dict(mutual=True, task="reid", num_classes=12)),
        ("run_nas.json", dict(arch="search:osnet_x0_25", task="nas", num_classes=None)),
        ("run_child.json", dict(arch="/tmp/oldfmt/nas/child_arch.json", options={})),
        ("run_api.json", dict(arch="", preprocessing=None, epoch=1, config=None)),
    ],
)
def test_every_kind_of_run_migrates(name, expected):
    spec = _spec(name)
    assert {k: getattr(spec, k) for k in expected} == expected


def test_attribute_and_classification_runs_keep_their_labels():
    attributes = _spec("run_attributes.json")
    assert (attributes.task, attributes.num_classes) == ("attributes", 8)
    assert attributes.labels[:3] == ("hat", "glasses", "bag")
    assert attributes.label_priors[:2] == (0.5, 0.166667) and attributes.options == {}
    classify = _spec("run_classify.json")
    assert (classify.task, classify.num_classes, classify.labels[0]) == ("classify", 10, "class0")
    assert classify.options == {"stem": "cifar"} and classify.input_size == (32, 32)
    assert classify.preprocessing.mean[0] == pytest.approx(0.50047, abs=1e-5)  # the dataset's
    assert classify.provenance.trained_on == "cifar10"


def test_adapted_runs_record_their_source():
    adapted, adabn = _spec("run_adapt.json"), _spec("run_adabn.json")
    sha = "f14b8d004d14067cab81b920dfebc2f21ce16649cfe24fbc11aea91354b5657c"
    assert adapted.provenance.adapted_from == SourceWeights("/tmp/oldfmt/reid", sha, "")
    assert adabn.provenance.adapted_from == SourceWeights("/tmp/oldfmt/reid", sha, "adabn")
    assert (adabn.epoch, adabn.record) == (0, {})


def test_the_old_zoo_files_migrate_and_agree_with_their_cards():
    oldest = _spec("zoo_osnet_ain_x0_25_market_tpami_cpu_s0.json")  # no task, 4-field size
    assert (oldest.arch, oldest.task, oldest.num_classes) == ("osnet_ain_x0_25", "reid", 751)
    assert oldest.preprocessing == Preprocessing(128, 64)  # RGB, [0, 1], bilinear, L2
    assert oldest.provenance.trained_on == "market1501" and oldest.epoch == 100
    adapted = _spec("zoo_osnet_x0_25_msmt17_adapted_market_cpu60.json")
    assert adapted.input_size == (256, 128)
    assert adapted.provenance.adapted_from.path == "/work/shared/weights/osnet_x0_25_msmt17.pth"
    for name in (
        "osnet_ain_x0_25_market_tpami_cpu_s0",
        "osnet_x0_25_market_ce_cpu",
        "osnet_x0_25_msmt17_adapted_market_cpu60",
    ):
        card, spec = _v1(f"card_{name}.json"), _spec(f"zoo_{name}.json")
        assert {k: getattr(spec, k) for k, v in card_spec_fields(card).items()} == (
            card_spec_fields(card)
        )
        assert set(migrate_card(card)) == set(card) - {"arch", "model_options", "preprocessing"}


def test_an_old_zoo_entry_folder_still_loads(tmp_path):
    """A zoo entry as shipped before format 2: format-1 meta.json and a card repeating it."""
    name = "osnet_x0_25_market_ce_cpu"
    from omnireid.models.zoo import ZOO_DIR

    folder = tmp_path / name
    folder.mkdir()
    shutil.copyfile(ZOO_DIR / name / "model.safetensors", folder / "model.safetensors")
    shutil.copyfile(V1 / f"zoo_{name}.json", folder / "meta.json")
    shutil.copyfile(V1 / f"card_{name}.json", folder / "card.json")
    entry = read_entry(folder)
    assert entry.sha256 == _v1(f"card_{name}.json")["file"]["sha256"]  # from the card
    assert "arch" not in entry.card and entry.spec.input_size == (128, 64)
    model, pre = load_for_inference(folder)
    assert (model.arch, pre.input_size, model.spec.weights_sha256) == (
        "osnet_x0_25",
        (128, 64),
        entry.sha256,
    )


def test_a_run_folder_written_before_the_spec_loads_and_resumes(tiny_world, tmp_path, caplog):
    """The folder earlier code left (format-1 meta.json, its config.json) loads, and a
    resumed run carries on from it and writes format 2."""
    out = tmp_path / "run"
    toy = tmp_path / "osnet_x0_25_toy.pt"
    from tests.deploy.helpers import trained_like

    torch.save(trained_like("osnet_x0_25").state_dict(), toy)
    settings = tiny_training(
        tiny_world,
        out,
        "model.bnneck=true",
        'model.options={"streams": 2}',
        f"model.weights={toy}",
        "test.metric=cosine",
    )
    fit_from_config(load_config(None, settings))
    moves = [("/tmp/oldfmt/reid", str(out)), ("/tmp/oldfmt/osnet_x0_25_toy.pt", str(toy))]
    meta, config = (V1 / "run_reid.json").read_text(), (V1 / "run_reid_config.json").read_text()
    for old, new in moves:
        meta, config = meta.replace(old, new), config.replace(old, new)
    (out / "epoch-0001" / "meta.json").write_text(meta)  # exactly as the old code wrote it
    (out / "config.json").write_text(config)
    assert "format_version" not in json.loads((out / "epoch-0001" / "meta.json").read_text())

    model, pre = load_for_inference(out)
    assert (model.arch, pre.input_size, model.bnneck is not None) == ("osnet_x0_25", (64, 32), True)
    assert model.spec.provenance.init.loaded == 271

    with caplog.at_level(logging.INFO, logger="omnireid"):
        records = fit_from_config(
            load_config(None, [*settings, "optim.max_epoch=2", "train.extend=true"])
        )
    assert [r["epoch"] for r in records] == [2] and "resuming" in caplog.text
    new = json.loads((out / "epoch-0002" / "meta.json").read_text())
    assert new["format_version"] == FORMAT_VERSION and new["epoch"] == 2
    assert load_spec(out / "epoch-0001").epoch == 1  # the old checkpoint beside it still reads
