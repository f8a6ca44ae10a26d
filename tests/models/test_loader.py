"""``load_for_inference``: one way from any weights argument to (model, preprocessing)."""

import logging

import pytest
import torch
from safetensors.torch import save_file

from omnireid.engine.checkpoint import save_checkpoint
from omnireid.errors import CheckpointError
from omnireid.models import build, load_for_inference
from omnireid.models.loader import infer_arch, read_weights
from omnireid.preprocessing import IMAGENET_MEAN, Preprocessing
from tests.deploy.helpers import trained_like


@pytest.fixture
def run(tmp_path):
    """A run folder as training leaves it: arch and 128x64 preprocessing in meta.json."""
    pre = {"height": 128, "width": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    meta = {"arch": "osnet_x0_25", "preprocessing": pre, "config": {"test": {"metric": "cosine"}}}
    save_checkpoint(tmp_path / "run", trained_like("osnet_x0_25"), 2, meta=meta)
    return tmp_path / "run"


def test_a_run_folder_brings_arch_and_preprocessing(run):
    model, pre = load_for_inference(run)
    assert model.arch == "osnet_x0_25" and not model.training
    assert pre == Preprocessing(128, 64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    same, _ = load_for_inference(run / "epoch-0002")  # the checkpoint folder itself
    for a, b in zip(model.state_dict().values(), same.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert read_weights(run).spec.config["test"]["metric"] == "cosine"
    assert model.spec.preprocessing == pre and model.spec.arch == "osnet_x0_25"


def test_arguments_override_and_a_contradiction_warns(run, caplog):
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        _, pre = load_for_inference(run, height=256, width=128)
    assert pre.input_size == (256, 128) and pre.mean == (0.5, 0.5, 0.5)
    assert "trained at 128x64; using 256x128 as asked" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        load_for_inference(run, height=128)  # agrees with the stored size: no warning
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING, logger="omnireid"), pytest.raises(CheckpointError):
        load_for_inference(run, "osnet_ain_x0_25")
    assert "trained as osnet_x0_25; building osnet_ain_x0_25" in caplog.text


def test_a_plain_file_gets_its_arch_from_the_tensors_and_default_preprocessing(tmp_path):
    torch.manual_seed(0)
    state = build("osnet_ain_x0_25", num_classes=7).state_dict()
    assert infer_arch(state) == "osnet_ain_x0_25"  # IN variants told apart from plain OSNet
    save_file(state, str(tmp_path / "ain.safetensors"))
    model, pre = load_for_inference(tmp_path / "ain.safetensors")
    assert model.arch == "osnet_ain_x0_25" and model.classifier.out_features == 7
    assert pre.input_size == (256, 128) and pre.mean == IMAGENET_MEAN
    assert (model.spec.arch, model.spec.num_classes, model.spec.preprocessing) == (
        "osnet_ain_x0_25",
        7,
        pre,
    )


def test_weights_without_a_classifier_load_with_none(tmp_path):
    """Features need no classifier: a file without one loads into a model that has none
    (``reset_classifier(0)``), instead of a stand-in classifier."""
    torch.manual_seed(0)
    full = build("osnet_x0_25", num_classes=7).eval()
    state = {k: v for k, v in full.state_dict().items() if not k.startswith("classifier.")}
    assert infer_arch(state) == "osnet_x0_25"
    save_file(state, str(tmp_path / "backbone.safetensors"))
    model, _ = load_for_inference(tmp_path / "backbone.safetensors")
    assert model.num_classes == 0
    assert not any(k.startswith("classifier") for k in model.state_dict())
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(model(x), full(x))
    assert model.spec.num_classes == 0


def test_unknown_shapes_and_wrong_kinds_are_clear_errors(tmp_path):
    state = build("osnet_x0_25").state_dict()
    state["conv1.conv.weight"] = torch.zeros(5, 3, 7, 7)
    with pytest.raises(CheckpointError, match="no known architecture"):
        infer_arch(state)
    with pytest.raises(CheckpointError, match="not found"):
        load_for_inference(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a run folder"):
        load_for_inference(tmp_path / "empty")
    from omnireid.models.attributes import build_attribute_model

    save_file(
        build_attribute_model("osnet_x0_25", 3).state_dict(), str(tmp_path / "attr.safetensors")
    )
    with pytest.raises(CheckpointError, match="holds a model for task 'attributes', not 'reid'"):
        load_for_inference(tmp_path / "attr.safetensors")
    model, _ = load_for_inference(tmp_path / "attr.safetensors", task=None)
    assert model.num_attributes == 3


def test_a_run_whose_latest_pointer_is_binary_names_no_checkpoint(tmp_path):
    from omnireid.engine.checkpoint import latest_checkpoint
    from omnireid.errors import CheckpointError

    (tmp_path / "latest").write_bytes(b"\xff\xfe\x00garbage")
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(CheckpointError, match="neither a run folder"):
        load_for_inference(tmp_path)
