"""``omnireid evaluate --backend ...``: the deployed graph itself scored on a benchmark."""

import json

import pytest

from omnireid.cli import main

SIZE = ["--height", "64", "--width", "32"]


def _metrics(args: list[str], out) -> dict:
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_every_backend_and_exported_file_scores_like_pytorch(tiny_world, toy_weights, tmp_path):
    data = ["--dataset", "market1501", "--root", str(tiny_world)]
    base = ["evaluate", *data]
    torch_m = _metrics([*base, "--weights", str(toy_weights), *SIZE, "--no-fast"], tmp_path / "t")
    assert torch_m["backend"] == "torch" and torch_m["num_valid_queries"] == 32
    keys = ("rank1", "rank5", "mAP", "mINP")
    for backend in ("fast", "onnxruntime", "openvino"):
        args = [*base, "--weights", str(toy_weights), *SIZE, "--backend", backend]
        got = _metrics(args, tmp_path / backend)
        assert {k: got[k] for k in keys} == pytest.approx({k: torch_m[k] for k in keys}, abs=1e-6)
    for fmt, option in (("onnx", "--onnx"), ("openvino", "--openvino")):
        export = ["export", fmt, "--weights", str(toy_weights), *SIZE, "--out", str(tmp_path)]
        assert main(export) == 0
        model = tmp_path / ("osnet_x0_25_toy." + ("onnx" if fmt == "onnx" else "xml"))
        got = _metrics([*base, option, str(model)], tmp_path / f"{fmt}-file")  # no --weights
        assert got["model_file"] == str(model) and got["height"] == 64
        assert {k: got[k] for k in keys} == pytest.approx({k: torch_m[k] for k in keys}, abs=1e-6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--onnx", "m.onnx", "--backend", "openvino"], "a .onnx graph runs with backend onnx"),
        (["--onnx", "m.onnx", "--openvino", "m.xml"], "not both"),
        (["--no-fast", "--backend", "fast"], "--no-fast runs with --backend torch"),
        ([], "--weights is required"),
        (["--onnx", "m.onnx", "--precision", "bf16"], "precision bf16 is for backend openvino"),
    ],
)
def test_backend_options_that_clash_are_refused(tiny_world, extra, message, capsys):
    args = ["evaluate", "--dataset", "market1501", "--root", str(tiny_world), *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_an_exported_graph_fixes_its_size(tiny_world, toy_weights, tmp_path, capsys):
    assert main(["export", "onnx", "--weights", str(toy_weights), "--out", str(tmp_path)]) == 0
    args = ["evaluate", "--dataset", "market1501", "--root", str(tiny_world), *SIZE]
    assert main([*args, "--onnx", str(tmp_path / "osnet_x0_25_toy.onnx")]) == 2
    assert "fixes its architecture and input size" in capsys.readouterr().err


def test_openvino_refuses_forked_loader_workers(tiny_world, capsys):
    code = main(["evaluate", "--openvino", "m.xml", "--dataset", "market1501",
                 "--root", str(tiny_world), "--workers", "2"])  # fmt: skip
    assert code == 2 and "--workers 0" in capsys.readouterr().err
