"""The preprocessing contract: what a checkpoint stores and an exported model carries."""

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
from omnireid.preprocessing import Preprocessing


def test_a_checkpoint_from_before_the_contract_reads_with_the_defaults():
    old = {"height": 128, "width": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    pre = Preprocessing.from_meta(old)
    assert pre.size == (128, 64) and pre.mean == (0.5, 0.5, 0.5)
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


def test_contract_properties_round_trip_as_plain_text():
    pre = Preprocessing(128, 64, output_norm="none")
    contract = ModelContract("osnet_ain_x0_25", 512, pre, "ab" * 32, "market1501")
    props = contract.to_props()
    assert props["arch"] == "osnet_ain_x0_25" and props["channel_order"] == "RGB"
    assert props["height"] == "128" and props["mean"] == "[0.485, 0.456, 0.406]"
    assert props["format_version"] == str(FORMAT_VERSION)
    assert ModelContract.from_props(props, "m.onnx") == contract


def test_a_missing_or_newer_contract_is_refused_naming_the_file():
    with pytest.raises(MissingContractError, match=r"other\.onnx carries no omnireid") as missing:
        ModelContract.from_props({}, "other.onnx")
    assert "or an older omnireid)" in str(missing.value) and "0.2" not in str(missing.value)
    props = ModelContract("osnet_x0_25", 512).to_props()
    with pytest.raises(ExportError, match=r"m\.xml has contract format 99.*upgrade"):
        ModelContract.from_props({**props, "format_version": "99"}, "m.xml")
    del props["feature_dim"]
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


def test_the_training_dataset_comes_from_the_run_or_the_reference_file_name():
    run = {"config": {"data": {"dataset": "msmt17"}}}
    assert training_dataset(run, "runs/x/model.safetensors", "osnet_x0_25") == "msmt17"
    assert training_dataset({}, "w/osnet_x0_25_market1501.pt", "osnet_x0_25") == "market1501"
    assert training_dataset({}, "w/best.pt", "osnet_x0_25") == ""
