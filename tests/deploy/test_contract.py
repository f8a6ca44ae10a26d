"""The preprocessing contract: what a checkpoint stores and an exported model carries."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnireid.data.transforms import build_eval_transform, transform_for
from omnireid.deploy.contract import (
    FORMAT_VERSION,
    MissingContractError,
    ModelContract,
    output_path,
    training_dataset,
)
from omnireid.errors import CheckpointError, ExportError
from omnireid.models.spec import ModelSpec, Provenance, Split
from omnireid.preprocessing import Preprocessing


def test_a_checkpoint_from_before_the_contract_reads_with_the_defaults():
    old = {"height": 128, "width": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    pre = Preprocessing.from_meta(old)
    assert pre.input_size == (128, 64) and pre.mean == (0.5, 0.5, 0.5)
    assert (pre.channel_order, pre.value_range, pre.interpolation) == ("RGB", (0, 1), "bilinear")
    assert (pre.resize, pre.output_norm) == ("stretch", "l2")
    assert Preprocessing.from_meta(pre.to_meta()) == pre
    assert Preprocessing.from_meta(None) == Preprocessing()


@pytest.mark.parametrize(
    ("key", "value"),
    [("channel_order", "BGR"), ("resize", "letterbox"), ("output_norm", "l1")],
)
def test_a_contract_this_version_cannot_honour_is_refused_by_name(key, value):
    with pytest.raises(CheckpointError, match=f"{key}='{value}'"):
        Preprocessing.from_meta({key: value})


def test_a_value_range_of_0_to_255_feeds_the_same_numbers():
    # mean/std in pixel units: (x - 255 m) / (255 s) == (x / 255 - m) / s
    pre = Preprocessing(
        64, 32, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), value_range=(0, 255)
    )
    pixels = np.random.default_rng(0).integers(0, 256, (90, 40, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    expected = build_eval_transform(64, 32)(img)  # ImageNet statistics in [0, 1] units
    np.testing.assert_allclose(transform_for(pre)(img), expected, atol=1e-5)


def _spec(**kw) -> ModelSpec:
    pre = Preprocessing(128, 64, output_norm="none")
    origin = Provenance(trained_on="market1501", split=Split("viper", 3))
    defaults = dict(feature_dim=512, preprocessing=pre, weights_sha256="ab" * 32)
    return ModelSpec("osnet_ain_x0_25", provenance=origin, **{**defaults, **kw})


def test_contract_properties_round_trip_as_plain_text_with_the_whole_spec():
    contract = ModelContract(_spec(options={"bnneck": True}, epoch=7))
    props = contract.to_props()
    assert props["arch"] == "osnet_ain_x0_25" and props["channel_order"] == "RGB"
    assert props["height"] == "128" and props["mean"] == "[0.485, 0.456, 0.406]"
    assert props["dataset"] == "market1501" and props["weights_sha256"] == "ab" * 32
    assert props["format_version"] == str(FORMAT_VERSION) == "2"
    assert json.loads(props["spec"])["format_version"] == 2
    read = ModelContract.from_props(props, "m.onnx")
    assert read == contract and read.spec.options == {"bnneck": True}
    assert read.spec.provenance.split == Split("viper", 3) and read.spec.epoch == 7


def test_a_format_1_contract_reads_into_a_spec():
    # what `omnireid export` wrote before the spec: flat fields only
    props = {
        "format_version": "1",
        "arch": "osnet_x0_25",
        "feature_dim": "256",
        "weights_sha256": "cd" * 32,
        "dataset": "dukemtmcreid",
        "input_name": "images",
        "output_name": "features",
        "layout": "NCHW",
        "height": "128",
        "width": "64",
        "mean": "[0.5, 0.5, 0.5]",
        "std": "[0.25, 0.25, 0.25]",
        "channel_order": "RGB",
        "value_range": "[0.0, 255.0]",
        "interpolation": "bilinear",
        "resize": "stretch",
        "output_norm": "none",
    }
    contract = ModelContract.from_props(props, "old.onnx")
    spec = contract.spec
    assert (spec.arch, spec.feature_dim, spec.weights_sha256) == ("osnet_x0_25", 256, "cd" * 32)
    assert spec.provenance.trained_on == "dukemtmcreid" and spec.task == "reid"
    pre = spec.preprocessing
    assert pre.input_size == (128, 64) and pre.mean == (0.5, 0.5, 0.5) and pre.std == (0.25,) * 3
    assert pre.value_range == (0.0, 255.0) and pre.output_norm == "none"
    assert contract.dataset == "dukemtmcreid" and contract.format_version == 1 + 1
    del props["arch"]
    with pytest.raises(ExportError, match=r"old\.onnx: incomplete or invalid contract"):
        ModelContract.from_props(props, "old.onnx")


@pytest.mark.parametrize(("key", "value"), [("height", "256"), ("arch", "osnet_x1_0")])
def test_a_flat_field_edited_away_from_the_spec_is_refused(key, value):
    props = {**ModelContract(_spec()).to_props(), key: value}
    with pytest.raises(ExportError, match=rf"m\.xml: the contract's {key}=.*disagrees"):
        ModelContract.from_props(props, "m.xml")


def test_a_contract_without_preprocessing_or_with_a_broken_spec_is_refused():
    with pytest.raises(ExportError, match="needs the spec's preprocessing"):
        ModelContract(ModelSpec("osnet_x0_25"))
    props = ModelContract(_spec()).to_props()
    with pytest.raises(ExportError, match=r"incomplete or invalid contract.*not JSON"):
        ModelContract.from_props({**props, "spec": "{"}, "m.onnx")
    with pytest.raises(ExportError, match=r"incomplete or invalid contract.*'spec'"):
        ModelContract.from_props({k: v for k, v in props.items() if k != "spec"}, "m.onnx")


def test_a_missing_or_newer_contract_is_refused_naming_the_file():
    with pytest.raises(MissingContractError, match=r"other\.onnx carries no omnireid") as missing:
        ModelContract.from_props({}, "other.onnx")
    assert "or an older omnireid)" in str(missing.value) and "0.2" not in str(missing.value)
    props = ModelContract(_spec()).to_props()
    with pytest.raises(ExportError, match=r"m\.xml has contract format 99.*upgrade"):
        ModelContract.from_props({**props, "format_version": "99"}, "m.xml")
    del props["feature_dim"], props["spec"]
    with pytest.raises(ExportError, match="incomplete"):
        ModelContract.from_props(props, "m.xml")


def test_the_default_file_name_rule(tmp_path):
    assert output_path(None, "osnet_x0_25", "market1501", ".onnx") == Path(
        "osnet_x0_25_market1501.onnx"
    )
    assert output_path(tmp_path, "osnet_x1_0", "", ".xml") == tmp_path / "osnet_x1_0.xml"
    assert output_path(f"{tmp_path}/new/", "a", "d", ".onnx") == tmp_path / "new" / "a_d.onnx"
    assert output_path(tmp_path / "mine.onnx", "a", "d", ".onnx") == tmp_path / "mine.onnx"
    with pytest.raises(ExportError, match=r"mine\.onnx: an \.xml file name or a folder"):
        output_path(tmp_path / "mine.onnx", "a", "d", ".xml")


def test_the_training_dataset_comes_from_the_spec_or_the_reference_file_name():
    def spec(trained_on: str) -> ModelSpec:
        return ModelSpec("osnet_x0_25", provenance=Provenance(trained_on=trained_on))

    assert training_dataset(spec("msmt17"), "runs/x/model.safetensors") == "msmt17"
    assert training_dataset(spec("market1501+cuhk03"), "m.pt") == "market1501+cuhk03"
    assert training_dataset(spec(""), "w/osnet_x0_25_market1501.pt") == "market1501"
    assert training_dataset(spec("/data/site A"), "w/osnet_x0_25_duke.pt") == "duke"  # a folder
    assert training_dataset(spec(""), "w/best.pt") == ""
