"""The model zoo: every shipped entry is intact, loads strictly, has a complete card and a
spec that names its weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from omnireid.config import load_config
from omnireid.data.transforms import transform_for
from omnireid.errors import CheckpointError
from omnireid.models import list_models, list_pretrained, load_for_inference, load_pretrained
from omnireid.models.spec import FORMAT_VERSION, file_sha256
from omnireid.models.zoo import (
    CARD_KEYS,
    TRAINING_KEYS,
    ZOO_DIR,
    ZooEntry,
    add_to_zoo,
    portable,
    portable_source,
    read_entry,
    zoo_entry,
    zoo_names,
)
from omnireid.tasks import fit_from_config
from tests.conftest import tiny_training


def _check_entry(entry: ZooEntry) -> None:
    card = entry.card
    assert set(CARD_KEYS) <= set(card), sorted(set(CARD_KEYS) - set(card))
    assert set(TRAINING_KEYS) <= set(card["training"])
    assert card["file"]["sha256"] == entry.sha256 == file_sha256(entry.weights)
    assert card["licence"] and card["metrics"]
    for data, metrics in card["metrics"].items():
        assert {"rank1", "mAP", "command"} <= set(metrics), data
    model, pre = load_for_inference(entry.folder)  # strict: every tensor fits the architecture
    assert model.arch == entry.spec.arch and pre == entry.preprocessing
    assert model.spec.weights_sha256 == entry.sha256


@pytest.mark.parametrize("name", zoo_names())
def test_every_zoo_model_is_intact_and_described(name):
    entry = zoo_entry(name)
    _check_entry(entry)
    stored = json.loads((entry.folder / "meta.json").read_text())
    assert stored["format_version"] == FORMAT_VERSION  # shipped in the current format
    card = json.loads((entry.folder / "card.json").read_text())
    assert portable(stored, ZOO_DIR) == stored and portable(card, ZOO_DIR) == card, (
        "an absolute path of the training machine is stored; models.zoo.portable relativises it"
    )
    model, pre = load_pretrained(name)
    assert model.arch == entry.spec.arch and pre.input_size == entry.spec.input_size


def test_the_zoo_is_listed_with_specs_and_transforms():
    entries = list_pretrained()
    assert [e.name for e in entries] == list_models(pretrained=True) == zoo_names()
    assert "osnet_x0_25" in list_models() and "osnet_x0_25" not in list_models(pretrained=True)
    for entry in entries:  # the transform comes from the spec: the size it was trained at
        image = Image.new("RGB", (40, 90))
        assert transform_for(entry.preprocessing)(image).shape == (3, *entry.spec.input_size)


def test_a_trained_run_becomes_a_zoo_entry(tiny_world, tmp_path):
    fit_from_config(load_config(None, tiny_training(tiny_world, tmp_path / "run")))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    card = {
        "summary": "a test model",
        "trained_on": "tiny world",
        "licence": "none: synthetic data",
        "training": {
            "command": "pytest",
            "config": {"data": {"root": str(tmp_path / "shared" / "market1501")}},
            "epochs": 1,
            "wall_minutes": 0.1,
            "machine": "test",
            "seed": 0,
            "code": "test",
        },
        "metrics": {"tiny": {"rank1": metrics["rank1"], "mAP": metrics["mAP"], "command": "x"}},
    }
    folder = add_to_zoo(tmp_path / "run", "tiny", card, zoo=tmp_path / "zoo", base=tmp_path)
    _check_entry(read_entry(folder))
    # the training machine's paths are stored relative to the checkout (base), none absolute
    entry = read_entry(folder)
    assert entry.card["training"]["config"]["data"]["root"] == "shared/market1501"
    assert entry.spec.config["train"]["out_dir"] == "run"
    root = entry.spec.config["data"]["root"]
    assert not Path(root).is_absolute() and (tmp_path / root).resolve() == tiny_world.resolve()
    for stored in ("meta.json", "card.json"):
        assert str(tmp_path) not in (folder / stored).read_text()
    assert json.loads((folder / "meta.json").read_text())["record"] == {}  # the card has them
    assert "arch" not in json.loads((folder / "card.json").read_text())  # the spec has it
    assert [e.name for e in list_pretrained(tmp_path / "zoo")] == ["tiny"]
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
    from omnireid.models.spec import ModelSpec
    from omnireid.preprocessing import Preprocessing

    def entry(name, trained_on):
        metrics = {"market1501": {"rank1": 80.76, "mAP": 59.27}}
        card = {"name": name, "trained_on": trained_on, "metrics": metrics,
                "file": {"bytes": 2_431_924}}  # fmt: skip
        spec = ModelSpec("osnet_x0_25", preprocessing=Preprocessing(128, 64))
        return ZooEntry(name, Path(name), spec, card)

    long = "osnet_ain_x0_25_market_tpami_cpu_s0_and_then_some"
    entries = [entry("short", "MSMT17 (labelled) + Market-1501 (unlabelled)"), entry(long, "x")]
    monkeypatch.setattr(zoo, "list_pretrained", lambda: entries)
    assert main(["zoo", "list"]) == 0
    header, first, second = capsys.readouterr().out.splitlines()[:3]
    assert second.startswith(long + "  osnet_x0_25  128x64")  # the name never runs into the arch
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
    from omnireid.models import zoo as zoo_module

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
    monkeypatch.setattr(zoo_module, "ZOO_DIR", zoo_copy.parent)
    with pytest.raises(CheckpointError, match=tampered):
        load_for_inference(f"zoo:{zoo_copy.name}")
    assert main(["info", "--weights", f"zoo:{zoo_copy.name}"]) == 2
    assert "SHA-256 mismatch" in capsys.readouterr().err


def test_a_zoo_model_without_a_checksum_to_verify_is_refused(zoo_copy, monkeypatch):
    from omnireid.models import zoo as zoo_module

    card = json.loads((zoo_copy / "card.json").read_text())
    del card["file"]["sha256"]
    (zoo_copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"records no SHA-256 of model\.safetensors"):
        load_for_inference(zoo_copy)
    (zoo_copy / "card.json").unlink()  # a checkpoint folder elsewhere needs no card...
    load_for_inference(zoo_copy)
    monkeypatch.setattr(zoo_module, "ZOO_DIR", zoo_copy.parent)  # ...a zoo entry does
    with pytest.raises(CheckpointError, match=r"has no card\.json: its weights cannot be verified"):
        load_for_inference(f"zoo:{zoo_copy.name}")


def test_portable_makes_absolute_paths_relative_to_the_checkout(tmp_path):
    checkout = tmp_path / "main"
    stored = {
        "data": {"root": str(tmp_path / "shared" / "data"), "sources": ["duke", 3]},
        "train": {"out_dir": str(checkout / "runs" / "a"), "resume": True},
        "command": "omnireid evaluate --root ../shared/data",  # already relative: kept
    }
    assert portable(stored, checkout) == {
        "data": {"root": "../shared/data", "sources": ["duke", 3]},
        "train": {"out_dir": "runs/a", "resume": True},
        "command": "omnireid evaluate --root ../shared/data",
    }


def test_portable_source_names_weights_without_this_machines_folders(tmp_path):
    """What an adapted model records as its source: the zoo name, a path inside the run folder
    relative to it, else the file name (its SHA-256 is stored beside it)."""
    run = tmp_path / "runs" / "adapted"
    assert portable_source("zoo:osnet_x0_25_market_ce_cpu", run) == "zoo:osnet_x0_25_market_ce_cpu"
    assert portable_source(run / "source" / "model.pt", run) == "source/model.pt"
    assert portable_source(tmp_path / "weights" / "msmt17.pth", run) == "msmt17.pth"
