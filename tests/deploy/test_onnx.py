import hashlib

import numpy as np
import onnx
import pytest
import torch

from omnireid.cli import main
from omnireid.data.images import read_image
from omnireid.data.transforms import build_eval_transform
from omnireid.deploy import onnx as onnx_mod
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.onnx import (
    OnnxVerificationError,
    export_onnx,
    open_session,
    read_onnx_contract,
    verify_onnx,
)
from omnireid.errors import ExportError
from omnireid.models import list_models
from omnireid.models.fused import optimize_for_inference
from tests.deploy.helpers import trained_like

SIZE = (64, 32)


def _ort(path, x: torch.Tensor) -> np.ndarray:
    session = open_session(path, threads=1)
    return session.run(["features"], {"images": x.numpy()})[0]


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_exports_and_matches_pytorch(arch, tmp_path):
    model = trained_like(arch)
    path = export_onnx(model, tmp_path / f"{arch}.onnx", SIZE)
    assert verify_onnx(model, path, SIZE, batch=2) <= 1e-4


def test_osnet_ain_instance_norms_export_as_instance_norms(tmp_path):
    model = trained_like("osnet_ain_x0_25")
    path = export_onnx(model, tmp_path / "ain.onnx", SIZE)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    ins = sum(isinstance(m, torch.nn.InstanceNorm2d) for m in model.modules())
    assert ins > 0 and ops.count("InstanceNormalization") == ins
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        expected = model(x).numpy()
    got = _ort(path, x)
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_dynamic_batch_runs_two_batch_sizes(tmp_path):
    model = trained_like("osnet_ain_x0_25")
    path = export_onnx(model, tmp_path / "dyn.onnx", SIZE, dynamic_batch=True)
    for n in (1, 5):
        x = torch.randn(n, 3, *SIZE)
        with torch.no_grad():
            expected = model(x).numpy()
        got = _ort(path, x)
        assert got.shape == (n, model.feature_dim)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_fixed_batch_export_has_batch_one(tmp_path):
    model = trained_like("osnet_x0_25")
    path = export_onnx(model, tmp_path / "fixed.onnx", SIZE, dynamic_batch=False)
    assert open_session(path).get_inputs()[0].shape == [1, 3, *SIZE]
    assert verify_onnx(model, path, SIZE, batch=1) <= 1e-4
    with pytest.raises(ValueError, match="fixed batch of 1"):
        verify_onnx(model, path, SIZE, batch=2)


def test_train_mode_model_exports_its_eval_graph_and_is_left_unchanged(tmp_path):
    model = trained_like("osnet_x0_25").train()
    path = export_onnx(model, tmp_path / "m.onnx", SIZE, opset=13)
    assert model.training
    x = torch.randn(3, 3, *SIZE)
    with torch.no_grad():
        expected = model.eval()(x).numpy()  # running BN statistics, not the batch's
    np.testing.assert_allclose(_ort(path, x), expected, atol=1e-4, rtol=0)


def test_the_fast_model_exports_too(tmp_path):
    model = trained_like("osnet_ain_x0_25")
    fast = optimize_for_inference(model)
    path = export_onnx(fast, tmp_path / "fast.onnx", SIZE)
    assert verify_onnx(model, path, SIZE, batch=2) <= 1e-4


def test_verify_raises_when_the_graph_differs(tmp_path):
    model = trained_like("osnet_x0_25")
    path = export_onnx(model, tmp_path / "m.onnx", SIZE)
    with torch.no_grad():
        model.fc[0].bias += 0.5  # the model moves on, the graph does not
    with pytest.raises(OnnxVerificationError, match="differs from PyTorch"):
        verify_onnx(model, path, SIZE)


def test_missing_onnx_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.onnx"):
        open_session(tmp_path / "nope.onnx")


def test_cli_exports_verifies_and_prints_the_difference(tmp_path, capsys):
    out = tmp_path / "model.onnx"
    args = ["export", "onnx", "--arch", "osnet_x0_25", "--random-init", "--out", str(out)]
    assert main([*args, "--dynamic-batch", "--height", "64", "--width", "32"]) == 0
    text = capsys.readouterr().out
    assert "max abs diff" in text and out.is_file()
    diff = float(text.split("max abs diff ")[1].split()[0])
    assert 0 <= diff <= 1e-4
    assert open_session(out).get_inputs()[0].shape[1:] == [3, 64, 32]


def test_cli_fails_when_verification_fails(tmp_path, capsys, monkeypatch):
    real_export = onnx_mod.export_onnx

    def export_then_change_the_model(model, *args, **kwargs):
        path = real_export(model, *args, **kwargs)
        with torch.no_grad():
            model.fc[0].bias += 0.5
        return path

    monkeypatch.setattr(onnx_mod, "export_onnx", export_then_change_the_model)
    args = ["export", "onnx", "--arch", "osnet_x0_25", "--random-init"]
    args += ["--out", str(tmp_path / "m.onnx"), "--height", "64", "--width", "32"]
    assert main(args) == 2
    assert "differs from PyTorch" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused: nothing written, no partial file left


def test_cli_refuses_to_export_random_weights_by_accident(tmp_path, capsys):
    args = ["export", "onnx", "--arch", "osnet_x0_25", "--out", str(tmp_path / "m.onnx")]
    assert main(args) == 2
    assert "--weights is required" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_loads_the_real_checkpoint(market_weights, tmp_path, capsys):
    args = ["export", "onnx", "--weights", str(market_weights)]
    assert main([*args, "--out", str(tmp_path / "m.onnx"), "--height", "64", "--width", "32"]) == 0
    assert "max abs diff" in capsys.readouterr().out


def test_cli_default_export_is_named_dynamic_and_carries_the_contract(
    toy_weights, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "onnx", "--weights", str(toy_weights), "--height", "64"]) == 0
    out = tmp_path / "osnet_x0_25_toy.onnx"  # {arch}_{dataset}: the file is osnet_x0_25_toy.pt
    assert str(out.name) in capsys.readouterr().out
    proto = onnx.load(str(out))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert proto.graph.input[0].name == "images"
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 64, 128]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["omnireid.weights_sha256"] == hashlib.sha256(toy_weights.read_bytes()).hexdigest()
    assert props["omnireid.arch"] == "osnet_x0_25" and props["omnireid.dataset"] == "toy"
    assert (props["omnireid.height"], props["omnireid.width"]) == ("64", "128")
    assert read_onnx_contract(out).preprocessing.input_size == (64, 128)


def test_cli_fixed_batch_and_folder_output(tmp_path):
    args = ["export", "onnx", "--arch", "osnet_x0_25", "--random-init", "--fixed-batch"]
    assert main([*args, "--height", "64", "--width", "32", "--out", str(tmp_path)]) == 0
    out = tmp_path / "osnet_x0_25_random-init.onnx"
    assert open_session(out).get_inputs()[0].shape == [1, 3, 64, 32]
    assert read_onnx_contract(out).weights_sha256 == ""


def test_from_onnx_alone_reproduces_a_runs_features(tiny_world, tmp_path):
    """The run's 64x32 size and its own mean/std travel in the file: nobody types them."""
    model, run, mean, std = _run_with_own_statistics(tmp_path)
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--weights", str(run), "--out", str(out)]) == 0
    paths = sorted((tiny_world / "query").glob("*.jpg"))[:6]
    x = torch.stack([build_eval_transform(64, 32, mean, std)(read_image(p)) for p in paths])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model(x), dim=1).numpy()
    np.testing.assert_allclose(FeatureExtractor.from_onnx(out)(paths), expected, atol=1e-4)


def test_from_onnx_refuses_a_graph_without_contract(tmp_path):
    path = export_onnx(trained_like("osnet_x0_25"), tmp_path / "bare.onnx", SIZE)
    with pytest.raises(ExportError, match=r"bare\.onnx carries no omnireid"):
        FeatureExtractor.from_onnx(path)


def _run_with_own_statistics(tmp_path):
    from omnireid.engine.checkpoint import save_checkpoint

    model = trained_like("osnet_x0_25")
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    pre = {"height": 64, "width": 32, "mean": mean, "std": std}
    meta = {"arch": "osnet_x0_25", "preprocessing": pre}
    save_checkpoint(tmp_path / "run", model, 3, meta=meta)
    return model, tmp_path / "run", mean, std


def test_the_export_command_embeds_the_checkpoint_spec(tmp_path):
    _, run, mean, std = _run_with_own_statistics(tmp_path)
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--weights", str(run), "--out", str(out)]) == 0
    spec = read_onnx_contract(out).spec
    assert (spec.arch, spec.epoch, spec.feature_dim) == ("osnet_x0_25", 3, 512)
    assert spec.preprocessing.input_size == (64, 32) and spec.preprocessing.mean == tuple(mean)
    assert spec.preprocessing.std == tuple(std)
    weights = run / "epoch-0003" / "model.safetensors"
    assert spec.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert FeatureExtractor.from_onnx(out).spec.epoch == 3  # what the extractor runs
