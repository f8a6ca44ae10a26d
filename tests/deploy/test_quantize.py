"""int8 (ONNX Runtime, NNCF for OpenVINO) and bf16 exports: the fp32 export's contract, checked
against fp32 before they are written, features close to fp32 on real images."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from omnireid.cli import main
from omnireid.data.datasets import load_dataset
from omnireid.deploy import agreement as agreement_mod
from omnireid.deploy.agreement import PrecisionCheckError, agreement
from omnireid.deploy.contract import ModelContract
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.onnx import export_onnx, onnx_precision, read_onnx_contract
from omnireid.deploy.quantize import calibration_split, export_onnx_int8, quantize_onnx
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing
from tests.deploy.helpers import trained_like

pytest.importorskip("onnxruntime")
SIZE = ["--height", "64", "--width", "32"]


def _int8_weights(path) -> list[np.ndarray]:
    graph = onnx.load(str(path)).graph
    return [
        numpy_helper.to_array(t).astype(int)
        for t in graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]


@pytest.mark.slow  # three exports, NNCF's included: ~55 s beside two training jobs
def test_int8_and_bf16_exports_carry_the_fp32_contract(toy_weights, tiny_world, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from omnireid.deploy.openvino import (
        openvino_precision,
        read_openvino_contract,
        read_openvino_model,
    )

    calib = ["--int8-calib", str(tiny_world / "bounding_box_train"), "--calib-count", "8"]
    base = ["--weights", str(toy_weights), *SIZE, "--out", str(tmp_path), *calib]
    assert main(["export", "onnx", *base, "--int8-full-range"]) == 0
    assert main(["export", "openvino", *base, "--bf16"]) == 0
    stem = tmp_path / "osnet_x0_25_toy"
    contract = read_onnx_contract(f"{stem}.onnx")
    assert contract.preprocessing.input_size == (64, 32) and contract.weights_sha256
    assert read_onnx_contract(f"{stem}.int8.onnx") == contract
    assert [read_openvino_contract(f"{stem}{s}.xml") for s in ("", ".int8", ".bf16")] == [
        contract
    ] * 3
    assert (onnx_precision(f"{stem}.onnx"), onnx_precision(f"{stem}.int8.onnx")) == ("fp32", "int8")
    irs = [read_openvino_model(f"{stem}{s}.xml") for s in ("", ".int8", ".bf16")]
    assert [openvino_precision(ir) for ir in irs] == ["fp32", "int8", "bf16"]
    assert max(np.abs(w).max() for w in _int8_weights(f"{stem}.int8.onnx")) > 64  # 8-bit
    # the files say how to run them: int8 from the int8 graph, bf16 from the marked IR
    routes = {".int8.onnx": "onnxruntime int8", ".int8.xml": "openvino int8"}
    for suffix, route in {**routes, ".bf16.xml": "openvino bf16"}.items():
        option = "onnx_path" if suffix.endswith(".onnx") else "openvino_path"
        backend = "onnxruntime" if suffix.endswith(".onnx") else "openvino"
        extractor = FeatureExtractor(backend=backend, **{option: f"{stem}{suffix}"})
        assert str(extractor.route) == route and extractor.contract == contract


def test_seven_bit_weights_when_asked(toy_weights, tiny_world, tmp_path):
    calib = ["--int8-calib", str(tiny_world / "bounding_box_train"), "--calib-count", "8"]
    out = ["--out", str(tmp_path / "m.onnx")]
    args = ["export", "onnx", "--weights", str(toy_weights), *SIZE, *out, *calib]
    assert main([*args, "--int8-reduce-range"]) == 0
    assert max(np.abs(w).max() for w in _int8_weights(tmp_path / "m.int8.onnx")) <= 64


def test_depthwise_convolutions_stay_fp32_when_asked(tiny_world, tmp_path):
    model = trained_like("osnet_x0_25")
    pre = Preprocessing(64, 32)
    fp32 = export_onnx(model, tmp_path / "m.onnx", pre.input_size)
    calib, _ = calibration_split(tiny_world / "bounding_box_train", pre, 4, 0)

    def conv_weights(path) -> dict[bool, set[str]]:
        """Where each Conv's weight comes from, by whether the Conv is grouped: a float
        initializer (fp32) or a DequantizeLinear (int8)."""
        graph = onnx.load(str(path)).graph
        made_by = {out: node.op_type for node in graph.node for out in node.output}
        found: dict[bool, set[str]] = {True: set(), False: set()}
        for node in graph.node:
            if node.op_type == "Conv":
                grouped = any(a.name == "group" and a.i > 1 for a in node.attribute)
                found[grouped].add(made_by.get(node.input[1], "initializer"))
        return found

    plain = conv_weights(quantize_onnx(fp32, tmp_path / "a.onnx", calib))
    kept = conv_weights(quantize_onnx(fp32, tmp_path / "b.onnx", calib, depthwise_fp32=True))
    assert plain == {True: {"DequantizeLinear"}, False: {"DequantizeLinear"}}
    assert kept == {True: {"initializer"}, False: {"DequantizeLinear"}}


def test_an_int8_graph_too_far_from_fp32_is_not_written(tiny_world, tmp_path, monkeypatch):
    model = trained_like("osnet_x0_25")
    pre = Preprocessing(64, 32)
    fp32 = export_onnx(model, tmp_path / "m.onnx", pre.input_size)
    calib, check = calibration_split(tiny_world / "bounding_box_train", pre, 8, 4)
    assert (len(calib), len(check)) == (8, 4)
    monkeypatch.setitem(agreement_mod.MIN_COSINE, "int8", 1.01)  # nothing can pass
    contract = ModelContract(
        ModelSpec(model.arch, feature_dim=model.feature_dim, preprocessing=pre)
    )
    with pytest.raises(PrecisionCheckError, match="int8 features are too far from fp32"):
        export_onnx_int8(fp32, tmp_path / "m.int8.onnx", contract, calib, check)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_calibration_images_spread_over_the_folder_and_hold_some_out(tiny_world):
    pre = Preprocessing(64, 32)
    calib, check = calibration_split(tiny_world / "bounding_box_train", pre, 40, 8)
    assert (len(calib), len(check)) == (40, 8)
    assert not any(np.array_equal(c, k) for c in calib for k in check)
    few, held = calibration_split(tiny_world / "bounding_box_train", pre, 300, 16)
    assert len(few) + len(held) == 96 and len(held) == 16  # all 96 train images


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_of_the_real_checkpoint_stays_near_fp32(fmt, market_weights, market_mini, tmp_path):
    """Calibrated on mini train images, tested on the (disjoint) query images: each int8
    feature close to its fp32 twin and nearer to it than to any other image's."""
    if fmt == "openvino":
        pytest.importorskip("openvino")
        pytest.importorskip("nncf")
    calib = ["--int8-calib", str(market_mini / "bounding_box_train"), "--calib-count", "64"]
    args = ["export", fmt, "--weights", str(market_weights), "--out", str(tmp_path), *calib]
    assert main(args) == 0
    suffix = ".onnx" if fmt == "onnx" else ".xml"
    option = "onnx_path" if fmt == "onnx" else "openvino_path"
    stem = tmp_path / "osnet_x0_25_market1501"
    queries = [s.path for s in load_dataset("market1501", market_mini).query[:16]]
    fp32 = FeatureExtractor(**{option: f"{stem}{suffix}"}, precision="fp32")(queries)
    int8 = FeatureExtractor(**{option: f"{stem}.int8{suffix}"}, precision="int8")(queries)
    found = agreement(fp32, int8)
    # measured (8-bit weights, 64 calibration images): ONNX Runtime mean 0.994 / min 0.990,
    # NNCF mean 0.990 / min 0.975 on these queries
    assert found.mean_cosine > 0.98 and found.min_cosine > 0.95, found
    assert found.twins, found


def test_bad_calibration_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\(N>0, 3, H, W\)"):
        quantize_onnx(tmp_path / "m.onnx", tmp_path / "q.onnx", np.zeros((0, 3, 8, 4)))
    with pytest.raises(ValueError, match="method"):
        quantize_onnx(tmp_path / "m.onnx", tmp_path / "q.onnx", np.zeros((1, 3, 8, 4)), method="x")
    with pytest.raises(FileNotFoundError, match="not found"):
        quantize_onnx(tmp_path / "m.onnx", tmp_path / "q.onnx", np.zeros((1, 3, 8, 4)))
