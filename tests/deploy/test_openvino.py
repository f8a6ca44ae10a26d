"""OpenVINO export and backend: verified against PyTorch, contract in rt_info, fp32 weights."""

import numpy as np
import pytest
import torch

from omnireid.cli import main
from omnireid.data.images import read_image
from omnireid.data.transforms import build_eval_transform
from omnireid.deploy import openvino as ov_mod
from omnireid.deploy.contract import ModelContract
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.openvino import (
    OpenVinoVerificationError,
    compile_openvino,
    export_openvino,
    read_openvino_contract,
    read_openvino_model,
)
from omnireid.errors import UsageError
from omnireid.models import list_models
from omnireid.models.spec import ModelSpec, Provenance
from omnireid.preprocessing import Preprocessing
from tests.deploy.helpers import trained_like

pytest.importorskip("openvino")
SIZE = (64, 32)


def _contract(model, weights_sha256: str = "", dataset: str = "") -> ModelContract:
    spec = ModelSpec(
        model.arch,
        feature_dim=model.feature_dim,
        preprocessing=Preprocessing(*SIZE),
        weights_sha256=weights_sha256,
        provenance=Provenance(trained_on=dataset),
    )
    return ModelContract(spec)


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_exports_and_matches_pytorch(arch, tmp_path):
    model = trained_like(arch)
    out = tmp_path / f"{arch}.xml"
    assert export_openvino(model, out, _contract(model)) <= 1e-4
    compiled = compile_openvino(out)
    x = torch.randn(3, 3, *SIZE)  # another batch size than the verification's
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(compiled([x.numpy()])[0], expected, atol=1e-4, rtol=0)


def test_the_ir_keeps_fp32_weights_and_the_contract(tmp_path):
    model = trained_like("osnet_ain_x0_25")
    contract = _contract(model, weights_sha256="0" * 64, dataset="market1501")
    out = tmp_path / "ain.xml"
    export_openvino(model, out, contract)
    graph = read_openvino_model(out)
    constants = [op for op in graph.get_ops() if op.get_type_name() == "Constant"]
    floats = {str(op.get_element_type()) for op in constants} - {"<Type: 'int64_t'>"}
    assert floats == {"<Type: 'float32'>"}, floats  # not compressed to fp16
    assert read_openvino_contract(out) == contract
    assert graph.inputs[0].get_any_name() == "images"
    assert not graph.inputs[0].get_partial_shape()[0].is_static  # dynamic batch


def test_a_failed_verification_writes_nothing(tmp_path, monkeypatch):
    model = trained_like("osnet_x0_25")
    real_export = ov_mod.export_onnx

    def export_then_change_the_model(m, *args, **kwargs):
        path = real_export(m, *args, **kwargs)
        with torch.no_grad():
            m.fc[0].bias += 0.5
        return path

    monkeypatch.setattr(ov_mod, "export_onnx", export_then_change_the_model)
    with pytest.raises(OpenVinoVerificationError, match="differs from PyTorch"):
        export_openvino(model, tmp_path / "m.xml", _contract(model))
    assert list(tmp_path.iterdir()) == []


def test_from_openvino_alone_reproduces_a_runs_features(tiny_world, tmp_path, capsys):
    from omnireid.engine.checkpoint import save_checkpoint

    model = trained_like("osnet_ibn_x1_0")
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    meta = {"arch": "osnet_ibn_x1_0", "preprocessing": {"height": 64, "width": 32}}
    meta["preprocessing"].update(mean=mean, std=std)
    save_checkpoint(tmp_path / "run", model, 1, meta=meta)
    args = ["export", "openvino", "--weights", str(tmp_path / "run"), "--out", str(tmp_path)]
    assert main(args) == 0
    out = tmp_path / "osnet_ibn_x1_0.xml"  # no dataset known: {arch}.xml
    assert "max abs diff" in capsys.readouterr().out and out.with_suffix(".bin").is_file()
    paths = sorted((tiny_world / "query").glob("*.jpg"))[:5]
    x = torch.stack([build_eval_transform(64, 32, mean, std)(read_image(p)) for p in paths])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model(x), dim=1).numpy()
    extractor = FeatureExtractor.from_openvino(out, batch_size=2)
    assert (extractor.arch, extractor.input_size) == ("osnet_ibn_x1_0", (64, 32))
    np.testing.assert_allclose(extractor(paths), expected, atol=1e-4)


def test_openvino_backend_from_weights_and_fixed_batch(toy_weights, tiny_world, tmp_path):
    paths = sorted((tiny_world / "query").glob("*.jpg"))[:5]
    common = dict(input_size=SIZE, batch_size=2, normalize=False)
    expected = FeatureExtractor(toy_weights, **common)(paths)
    got = FeatureExtractor(toy_weights, backend="openvino", **common)(paths)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    args = ["export", "openvino", "--weights", str(toy_weights), "--fixed-batch"]
    assert main([*args, "--height", "64", "--width", "32", "--out", str(tmp_path / "f.xml")]) == 0
    fixed = FeatureExtractor.from_openvino(tmp_path / "f.xml", batch_size=3, normalize=False)
    batch = read_openvino_model(tmp_path / "f.xml").inputs[0].get_partial_shape()[0]
    assert batch.get_length() == 1
    np.testing.assert_allclose(fixed(paths), expected, atol=1e-4, rtol=0)


def test_real_checkpoint_through_openvino(market_weights, market_mini, tmp_path):
    out = tmp_path / "real.xml"
    assert main(["export", "openvino", "--weights", str(market_weights), "--out", str(out)]) == 0
    assert read_openvino_contract(out).dataset == "market1501"
    paths = sorted((market_mini / "query").glob("*.jpg"))
    expected = FeatureExtractor(market_weights)(paths)
    np.testing.assert_allclose(FeatureExtractor.from_openvino(out)(paths), expected, atol=1e-4)


def test_f32_unless_bf16_is_asked(toy_weights, tiny_world):
    """OpenVINO's CPU default is bf16 where the CPU has bf16 units: compiled f32 unless asked."""
    import openvino as ov

    paths = sorted((tiny_world / "query").glob("*.jpg"))[:4]
    common = dict(input_size=SIZE, backend="openvino")
    f32 = FeatureExtractor(toy_weights, **common)
    assert f32.runner.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    bf16 = FeatureExtractor(toy_weights, **common, precision="bf16")
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert bf16.runner.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    cosine = (f32(paths) * bf16(paths)).sum(1)  # both L2-normalised
    assert cosine.min() > 0.99, cosine
    with pytest.raises(UsageError, match="precision='fp16' is for the torch backends"):
        FeatureExtractor(toy_weights, **common, precision="fp16")


def test_nothing_wrong_passes_through_openvino(toy_weights, tiny_world, tmp_path):
    """OpenVINO's fused convolutions turn NaN into 0: a NaN input, a NaN weight in the graph
    and one feature for every image are refused, as on the other backends."""
    from omnireid.deploy.onnx import export_onnx
    from omnireid.errors import DegenerateFeaturesError, ExportError
    from tests.deploy.helpers import degenerate, nan_initializer

    paths = sorted((tiny_world / "query").glob("*.jpg"))[:4]
    extractor = FeatureExtractor(toy_weights, input_size=SIZE, backend="openvino")
    x = torch.stack([build_eval_transform(*SIZE)(read_image(p)) for p in paths])
    x[2, 1, 3, 3] = float("nan")
    with pytest.raises(UsageError, match="input 0: the tensor holds NaN or infinite values"):
        extractor(x)
    good = export_onnx(trained_like("osnet_x0_25"), tmp_path / "m.onnx", SIZE)
    name = nan_initializer(good, tmp_path / "bad.onnx")
    with pytest.raises(ExportError, match=rf"bad\.onnx holds NaN.*1 tensor\(s\), e\.g\. {name}"):
        FeatureExtractor(backend="openvino", openvino_path=tmp_path / "bad.onnx", input_size=SIZE)
    zero = tmp_path / "zero_conv1.pt"
    torch.save(degenerate().state_dict(), zero)
    flat = FeatureExtractor(zero, input_size=SIZE, backend="openvino")
    with pytest.raises(DegenerateFeaturesError, match="all 4 images gave the same feature"):
        flat(paths)


def test_a_file_openvino_cannot_read_is_an_export_error(toy_weights):
    """A .pt given as an IR was OpenVINO's multi-line RuntimeError."""
    from omnireid.errors import ExportError

    with pytest.raises(ExportError, match=r"osnet_x0_25_toy\.pt is not an OpenVINO IR or ONNX"):
        FeatureExtractor.from_openvino(toy_weights)
