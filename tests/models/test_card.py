"""The model card (``models.card``): what a checkpoint is, costs, was trained on and scored."""

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from omnireid.cli import main
from omnireid.data.synthetic import generate_world
from omnireid.errors import CheckpointError
from omnireid.models import build
from omnireid.models.card import format_card, read_card
from omnireid.models.complexity import count_complexity
from omnireid.models.spec import ModelSpec
from tests.conftest import TINY_TRAIN_IDS, tiny_training


@pytest.fixture(scope="module")
def attribute_run(tmp_path_factory):
    """A one-epoch attribute run on a tiny synthetic world, through the CLI."""
    tmp = tmp_path_factory.mktemp("attr")
    generate_world(
        tmp / "world",
        num_ids_train=4,
        num_ids_test=2,
        images_per_id_per_cam=2,
        num_cams=2,
        num_distractors=2,
    )
    overrides = tiny_training(
        tmp / "world", tmp / "run", "data.dataset=synthetic", "data.batch_size=8"
    )
    assert main(["train", "--task", "attributes", *overrides]) == 0
    return tmp / "run"


def test_attribute_training_logs_ma_and_instance_metrics(attribute_run):
    record = json.loads((attribute_run / "log.jsonl").read_text().splitlines()[-1])
    assert {"bce", "acc", "mA", "accuracy", "precision", "recall", "f1"} <= set(record)
    assert 0 <= record["mA"] <= 100 and 0 <= record["acc"] <= 1


def test_card_of_an_attribute_run_folder(attribute_run, capsys):
    card = read_card(attribute_run)
    assert (card.arch, card.arch_from, card.task, card.outputs) == (
        "osnet_x0_25",
        "checkpoint",
        "attributes",
        8,
    )
    assert card.attributes[:2] == ["hat", "glasses"]
    assert (card.height, card.width, card.epoch) == (64, 32, 1)
    assert card.config["train"]["task"] == "attributes"
    assert card.metrics == {
        k: json.loads((attribute_run / "metrics.json").read_text())[k]
        for k in ("mA", "accuracy", "precision", "recall", "f1")
    }
    # The head is left out of the cost, so it equals the plain backbone's.
    plain = count_complexity(build("osnet_x0_25"), 64, 32)
    assert (card.params, card.mult_adds) == (plain.params, plain.mult_adds)
    assert card.params_total == plain.params + 512 * 8 + 8
    assert main(["info", "--weights", str(attribute_run)]) == 0
    out = capsys.readouterr().out
    assert "osnet_x0_25 (from checkpoint)" in out and "mA " in out and "task=attributes" in out
    # the card carries the model's spec itself, and its JSON the spec's own format
    assert card.spec.task == "attributes" and card.spec.labels[:2] == ("hat", "glasses")
    assert main(["info", "--weights", str(attribute_run), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["spec"]["format_version"] == 2 and printed["arch_from"] == "checkpoint"
    assert ModelSpec.from_dict(printed["spec"]) == card.spec


def test_a_bare_attribute_weights_file_is_recognised_from_its_tensors(attribute_run, tmp_path):
    ckpt = attribute_run / (attribute_run / "latest").read_text().strip()
    shutil.copy(ckpt / "model.safetensors", tmp_path / "attr.safetensors")
    card = read_card(tmp_path / "attr.safetensors", height=128, width=64)
    assert (card.arch, card.arch_from, card.task, card.outputs) == (
        "osnet_x0_25",
        "tensor shapes",
        "attributes",
        8,
    )
    assert card.config is None and card.metrics == {}


def test_card_of_a_reid_run_folder(tiny_world, tmp_path):
    assert main(["train", *tiny_training(tiny_world, tmp_path / "run")]) == 0
    card = read_card(tmp_path / "run", height=256, width=128)
    assert (card.arch, card.task, card.outputs) == ("osnet_x0_25", "reid", TINY_TRAIN_IDS)
    assert {"rank1", "mAP"} <= set(card.metrics)
    assert card.config == json.loads((tmp_path / "run" / "config.json").read_text())
    assert card.mult_adds == count_complexity(build("osnet_x0_25"), 256, 128).mult_adds


def test_reference_checkpoint_architecture_is_inferred(market_weights, capsys):
    card = read_card(market_weights)
    assert (card.arch, card.arch_from, card.outputs) == ("osnet_x0_25", "tensor shapes", 751)
    reference = count_complexity(build("osnet_x0_25"), 256, 128)
    assert (card.params, card.mult_adds) == (reference.params, reference.mult_adds)
    assert card.config is None and card.metrics == {}
    assert main(["info", "--weights", str(market_weights), "--height", "128"]) == 0
    out = capsys.readouterr().out
    assert "at 128x128" in out and "none stored" in out


def test_an_instance_normalised_variant_gets_its_card(tmp_path):
    torch.manual_seed(0)
    save_file(
        build("osnet_ain_x0_25", num_classes=7).state_dict(), str(tmp_path / "ain.safetensors")
    )
    card = read_card(tmp_path / "ain.safetensors")
    assert (card.arch, card.arch_from, card.outputs) == ("osnet_ain_x0_25", "tensor shapes", 7)


def test_wrong_or_unknown_architectures_are_clear_errors(market_weights, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="does not match"):
        read_card(market_weights, arch="osnet_x1_0")
    assert main(["info", "--weights", str(tmp_path / "missing.pth")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a run folder"):
        read_card(tmp_path / "empty")


def test_format_card_mentions_what_is_missing(market_weights):
    text = format_card(read_card(market_weights))
    assert "0.202M without the classifier" in text and "training config (none stored" in text
