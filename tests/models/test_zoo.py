"""The model zoo: every shipped entry is intact, loads strictly and has a complete card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from omnireid.config import load_config
from omnireid.errors import CheckpointError
from omnireid.models import load_for_inference
from omnireid.models.weights import ZOO_DIR, file_sha256, zoo_names
from omnireid.models.zoo import CARD_KEYS, TRAINING_KEYS, add_to_zoo, list_zoo, read_zoo_card
from omnireid.tasks import fit_from_config
from tests.conftest import tiny_training


def _check_entry(folder: Path, card: dict) -> None:
    assert set(CARD_KEYS) <= set(card), sorted(set(CARD_KEYS) - set(card))
    assert set(TRAINING_KEYS) <= set(card["training"])
    assert card["file"]["sha256"] == file_sha256(folder / "model.safetensors")
    assert card["licence"] and card["metrics"]
    for data, metrics in card["metrics"].items():
        assert {"rank1", "mAP", "command"} <= set(metrics), data
    model, pre = load_for_inference(folder)  # strict: every tensor fits the architecture
    assert model.arch == card["arch"] and pre.height == card["preprocessing"]["height"]


@pytest.mark.parametrize("name", zoo_names())
def test_every_zoo_model_is_intact_and_described(name):
    _check_entry(ZOO_DIR / name, read_zoo_card(name))
    model, _ = load_for_inference(f"zoo:{name}")
    assert model.arch == read_zoo_card(name)["arch"]


def test_a_trained_run_becomes_a_zoo_entry(tiny_world, tmp_path):
    fit_from_config(load_config(None, tiny_training(tiny_world, tmp_path / "run")))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    card = {
        "summary": "a test model",
        "trained_on": "tiny world",
        "licence": "none: synthetic data",
        "training": {
            "command": "pytest",
            "config": {},
            "epochs": 1,
            "wall_minutes": 0.1,
            "machine": "test",
            "seed": 0,
            "code": "test",
        },
        "metrics": {"tiny": {"rank1": metrics["rank1"], "mAP": metrics["mAP"], "command": "x"}},
    }
    folder = add_to_zoo(tmp_path / "run", "tiny", card, zoo=tmp_path / "zoo")
    _check_entry(folder, json.loads((folder / "card.json").read_text()))
    assert "log" not in json.loads((folder / "meta.json").read_text())
    assert [c["name"] for c in list_zoo(tmp_path / "zoo")] == ["tiny"]
    with pytest.raises(CheckpointError, match=r"lacks \['licence'\]"):
        add_to_zoo(tmp_path / "run", "bad", {k: v for k, v in card.items() if k != "licence"},
                   zoo=tmp_path / "zoo")  # fmt: skip


def test_an_unknown_zoo_name_lists_what_exists(capsys):
    from omnireid.cli import main

    with pytest.raises(CheckpointError, match="no model 'nothing' in the zoo"):
        load_for_inference("zoo:nothing")
    assert main(["zoo", "list"]) == 0
    assert main(["evaluate", "--weights", "zoo:nothing", "--dataset", "x", "--root", "."]) == 2
    assert "no model 'nothing' in the zoo" in capsys.readouterr().err


def test_zoo_list_keeps_its_columns_apart_for_long_names(monkeypatch, capsys):
    import omnireid.models.zoo as zoo
    from omnireid.cli import main

    def card(name, trained_on):
        metrics = {"market1501": {"rank1": 80.76, "mAP": 59.27}}
        file = {"bytes": 2_431_924}
        return {"name": name, "arch": "osnet_x0_25", "trained_on": trained_on,
                "metrics": metrics, "file": file}  # fmt: skip

    long = "osnet_ain_x0_25_market_tpami_cpu_s0_and_then_some"
    cards = [card("short", "MSMT17 (labelled) + Market-1501 (unlabelled)"), card(long, "x")]
    monkeypatch.setattr(zoo, "list_zoo", lambda: cards)
    assert main(["zoo", "list"]) == 0
    header, first, second = capsys.readouterr().out.splitlines()[:3]
    assert second.startswith(long + "  osnet_x0_25")  # the name never runs into the arch
    assert first.index("osnet_x0_25") == second.index("osnet_x0_25") == header.index("arch")
    assert first.endswith("80.8 / 59.3  2.4 MB")


@pytest.fixture
def zoo_copy(tmp_path) -> Path:
    """A writable zoo holding a copy of the first shipped model."""
    if not zoo_names():
        pytest.skip("the zoo is empty")
    name = zoo_names()[0]
    shutil.copytree(ZOO_DIR / name, tmp_path / "zoo" / name)
    return tmp_path / "zoo" / name


def _tamper(weights: Path) -> None:
    """Change the last byte of the file (tensor data: still a readable, finite-valued file)."""
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))


def test_a_tampered_zoo_model_is_refused_by_path_and_by_name(zoo_copy, monkeypatch, capsys):
    from omnireid.cli import main
    from omnireid.models import weights as weights_module

    load_for_inference(zoo_copy)  # intact: loads
    _tamper(zoo_copy / "model.safetensors")
    tampered = "not the file its model card"
    with pytest.raises(CheckpointError, match=tampered):
        load_for_inference(zoo_copy)
    assert main(["info", "--weights", str(zoo_copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("omnireid info: error:")
    assert "model.safetensors is not the file its model card" in err[0]
    assert "SHA-256 mismatch" in err[0]
    monkeypatch.setattr(weights_module, "ZOO_DIR", zoo_copy.parent)
    with pytest.raises(CheckpointError, match=tampered):
        load_for_inference(f"zoo:{zoo_copy.name}")
    assert main(["info", "--weights", f"zoo:{zoo_copy.name}"]) == 2
    assert "SHA-256 mismatch" in capsys.readouterr().err


def test_a_zoo_model_without_a_checksum_to_verify_is_refused(zoo_copy, monkeypatch):
    from omnireid.models import weights as weights_module

    card = json.loads((zoo_copy / "card.json").read_text())
    del card["file"]["sha256"]
    (zoo_copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"records no SHA-256 of model\.safetensors"):
        load_for_inference(zoo_copy)
    (zoo_copy / "card.json").unlink()  # a checkpoint folder elsewhere needs no card...
    load_for_inference(zoo_copy)
    monkeypatch.setattr(weights_module, "ZOO_DIR", zoo_copy.parent)  # ...a zoo entry does
    with pytest.raises(CheckpointError, match=r"has no card\.json: its weights cannot be verified"):
        load_for_inference(f"zoo:{zoo_copy.name}")
