"""precision="auto": the fastest path the (simulated) CPU has within the accuracy bound, fp32
on a CPU without bf16/VNNI, checked against fp32 on the first batch."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from omnireid.deploy import auto
from omnireid.deploy.auto import (
    CheckedRunner,
    Route,
    choose_route,
    has_units,
    resolve_route,
    sibling_graphs,
)
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.errors import UsageError
from tests.deploy.helpers import trained_like

AVX2 = frozenset({"avx2", "fma"})  # a CPU without bf16 or int8 dot-product units
ZEN5 = AVX2 | {"avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni"}
VNNI_ONLY = AVX2 | {"avx512f", "avx512_vnni"}  # e.g. Cascade Lake: int8 units, no bf16
BOTH = frozenset({"onnxruntime", "openvino"})
SIZE = (64, 32)


def _choose(flags, runtimes=BOTH, graphs=None, weights=True, **kw) -> tuple[Route, str]:
    graphs = graphs or {}
    return choose_route(flags=flags, runtimes=runtimes, graphs=graphs, has_weights=weights, **kw)


def test_units_come_from_the_cpu_flags():
    assert has_units("fp32", frozenset())
    assert not has_units("bf16", AVX2) and not has_units("int8", AVX2)
    assert has_units("bf16", ZEN5) and has_units("int8", ZEN5)
    assert has_units("int8", frozenset({"amx_int8"})) and has_units("bf16", {"amx_bf16"})


def test_a_cpu_without_bf16_or_vnni_gets_fp32():
    route, why = _choose(AVX2)
    assert route == Route("onnxruntime", "fp32")
    assert "no bf16 units" in why and "no int8 units" in why
    assert _choose(AVX2, runtimes=frozenset())[0] == Route("fast", "fp32")  # nothing installed
    graphs = {"fp32": Path("m.xml"), "int8": Path("m.int8.xml")}
    route, _ = _choose(AVX2, graphs=graphs, weights=False, graph_backend="openvino")
    assert route == Route("openvino", "fp32")  # an int8 graph at hand changes nothing


def test_bf16_units_and_openvino_give_bf16():
    route, why = _choose(ZEN5)
    assert route == Route("openvino", "bf16") and "within 0.5 mAP" in why
    assert _choose(ZEN5, runtimes={"onnxruntime"})[0] == Route("onnxruntime", "fp32")
    assert _choose(ZEN5, exclude=("openvino",))[0] == Route("onnxruntime", "fp32")  # forks
    assert _choose(ZEN5, device="cuda")[0] == Route("fast", "fp32")


def test_int8_needs_a_graph_vnni_and_a_measured_cost(monkeypatch):
    graphs = {"fp32": Path("m.onnx"), "int8": Path("m.int8.onnx")}
    alone = {"int8": Path("m.int8.onnx")}
    one = dict(weights=False, graph_backend="onnxruntime")
    monkeypatch.setitem(auto.MAP_COST, Route("onnxruntime", "int8"), 0.3)
    # ONNX Runtime's fp32 ranks before its int8 (2x faster for x0.25, bench_zen5.json)
    assert _choose(VNNI_ONLY, graphs=graphs, **one)[0] == Route("onnxruntime", "fp32")
    route, why = _choose(VNNI_ONLY, graphs=alone, **one)
    assert route == Route("onnxruntime", "int8") and "within 0.5 mAP" in why
    assert _choose(VNNI_ONLY)[0] == Route("onnxruntime", "fp32")  # weights: no int8 graph
    route, why = _choose(AVX2, graphs=alone, **one)  # no VNNI: int8 runs only as the last resort
    assert route == Route("onnxruntime", "int8") and "no int8 units" in why
    monkeypatch.setitem(auto.MAP_COST, Route("onnxruntime", "int8"), None)
    assert "cost not measured yet" in _choose(VNNI_ONLY, graphs=alone, **one)[1]
    monkeypatch.setitem(auto.MAP_COST, Route("onnxruntime", "int8"), 0.9)
    assert "costs 0.90 mAP > 0.5" in _choose(VNNI_ONLY, graphs=alone, **one)[1]


def test_the_measured_int8_costs_keep_auto_off_int8():
    # benchmarks/quantized_market.py: int8 costs up to 0.93 / 0.92 mAP on a real x0.25 model
    openvino = {"fp32": Path("m.xml"), "int8": Path("m.int8.xml")}
    route, why = _choose(VNNI_ONLY, graphs=openvino, weights=False, graph_backend="openvino")
    assert route == Route("openvino", "fp32") and "openvino int8 costs 0.92 mAP > 0.5" in why


def test_sibling_graphs_are_what_export_writes(tmp_path):
    for name in ("m.onnx", "m.int8.onnx", "n.xml", "n.bf16.xml"):
        (tmp_path / name).touch()
    assert sibling_graphs(tmp_path / "m.onnx", "fp32") == {
        "fp32": tmp_path / "m.onnx",
        "int8": tmp_path / "m.int8.onnx",
    }
    assert sibling_graphs(tmp_path / "m.int8.onnx", "int8")["fp32"] == tmp_path / "m.onnx"
    assert sibling_graphs(tmp_path / "n.bf16.xml", "bf16") == {
        "fp32": tmp_path / "n.bf16.xml",  # fp32 weights, to run in bf16
    }


def test_explicit_choices_and_the_environment(monkeypatch):
    monkeypatch.setattr(auto, "cpu_flags", lambda: ZEN5)
    monkeypatch.delenv(auto.ENV)
    assert resolve_route("auto", "auto", None, True, "cpu", ())[0] == Route("openvino", "bf16")
    assert resolve_route("auto", "fp32", None, True, "cpu", ())[0] == Route("fast", "fp32")
    assert resolve_route("fast", "auto", None, True, "cpu", ())[0] == Route("fast", "fp32")
    monkeypatch.setenv(auto.ENV, "fp32")
    assert resolve_route("auto", "auto", None, True, "cpu", ())[:2] == (
        Route("fast", "fp32"),
        "$OMNIREID_PRECISION=fp32",
    )
    monkeypatch.setenv(auto.ENV, "fp8")
    with pytest.raises(ValueError, match="OMNIREID_PRECISION='fp8'"):
        resolve_route("auto", "auto", None, True, "cpu", ())
    with pytest.raises(UsageError, match="--int8-calib"):
        resolve_route("auto", "int8", None, True, "cpu", ())
    given = (Path("m.onnx"), "fp32", "onnxruntime")
    with pytest.raises(UsageError, match="no int8 one lies beside it"):
        resolve_route("auto", "int8", given, False, "cpu", ())


class _Fixed:
    """A runner that returns fixed features, counting its calls."""

    feature_dim = 4

    def __init__(self, feats: np.ndarray) -> None:
        self.feats, self.calls = feats, 0

    def __call__(self, x):
        self.calls += 1
        return self.feats[: len(x)]


def test_the_first_batch_check_keeps_a_close_path_and_drops_a_far_one(caplog):
    rng = np.random.default_rng(0)
    fp32 = rng.normal(size=(3, 4)).astype(np.float32)
    close, fp32_runner = _Fixed(fp32 + 1e-4), _Fixed(fp32)
    checked = CheckedRunner(close, fp32_runner, Route("openvino", "bf16"))
    x = np.zeros((3, 1))
    np.testing.assert_array_equal(checked(x), close.feats)
    checked(x)
    assert (close.calls, fp32_runner.calls, checked.fell_back) == (2, 1, False)
    far, fp32_runner = _Fixed(rng.normal(size=(3, 4)).astype(np.float32)), _Fixed(fp32)
    checked = CheckedRunner(far, fp32_runner, Route("openvino", "int8"))
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        np.testing.assert_array_equal(checked(x), fp32)
    assert "too far from fp32 on the first batch" in caplog.text and checked.fell_back
    checked(x)
    assert (far.calls, fp32_runner.calls) == (1, 2)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "osnet_x0_25.pt"
    torch.save(trained_like("osnet_x0_25").state_dict(), path)
    return path


def test_the_extractor_falls_back_to_fp32_without_bf16_or_vnni(weights, monkeypatch, caplog):
    monkeypatch.delenv(auto.ENV)
    monkeypatch.setattr(auto, "cpu_flags", lambda: AVX2)
    monkeypatch.setattr(auto, "installed_runtimes", lambda: frozenset())
    with caplog.at_level(logging.INFO, logger="omnireid"):
        extractor = FeatureExtractor(weights, input_size=SIZE)
    assert (extractor.backend, extractor.precision) == ("fast", "fp32")
    assert not isinstance(extractor.runner, CheckedRunner)
    lines = [r.getMessage() for r in caplog.records if "inference path" in r.getMessage()]
    assert len(lines) == 1 and "fast fp32" in lines[0] and "no bf16 units" in lines[0]


def test_the_extractor_takes_bf16_where_the_cpu_has_it(weights, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.delenv(auto.ENV)
    monkeypatch.setattr(auto, "cpu_flags", lambda: ZEN5)
    x = torch.randn(4, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    extractor = FeatureExtractor(weights, input_size=SIZE)
    assert extractor.route == Route("openvino", "bf16")
    assert isinstance(extractor.runner, CheckedRunner)  # checked on its first batch
    got = extractor(x)
    fp32 = FeatureExtractor(weights, input_size=SIZE, precision="fp32")(x)
    assert (got * fp32).sum(1).min() > 0.999
