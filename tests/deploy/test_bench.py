"""``omnireid bench``: one row per path the machine has, ratios and peak fractions that add up."""

import importlib.util
import json

import pytest

from omnireid.cli import main
from omnireid.deploy import bench as bench_mod
from omnireid.deploy.bench import PATHS, Row, conv_traffic, format_row
from omnireid.deploy.peak import Peak
from omnireid.models import build


def _available() -> list[str]:
    have = {m: importlib.util.find_spec(m) is not None for m in ("torchreid", "onnxruntime")}
    have["openvino"] = importlib.util.find_spec("openvino") is not None
    nncf = importlib.util.find_spec("nncf") is not None
    paths = [p for p in PATHS if p != "reference fp32" or have["torchreid"]]
    paths = [p for p in paths if not p.startswith("onnxruntime") or have["onnxruntime"]]
    paths = [p for p in paths if not p.startswith("openvino") or have["openvino"]]
    return [p for p in paths if p != "openvino int8" or nncf]


def test_depthwise_convs_move_more_data_than_they_compute():
    traffic = conv_traffic(build("osnet_x0_25", num_classes=1), 64, 32)
    assert 0 < traffic.depthwise_mult_adds < 0.2 < traffic.depthwise_traffic < 0.6


def test_a_row_names_its_limit_only_below_half_peak():
    row = Row("fast fp32", "fp32", 100.0, [100.0], 2.0, "torch fp32", None, 0.2, "batch 1")
    text = format_row(row)
    assert "100.0 img/s" in text and "x 2.00" in text and "20.0% of fp32 peak" in text
    assert text.endswith("limited by: batch 1") and "cos" not in text  # random weights
    fine = Row("openvino bf16", "bf16", 1.0, [1.0], 1.0, "torch fp32", 0.99991, 0.6, None)
    assert format_row(fine).endswith("cos 0.9999")


@pytest.mark.slow
def test_the_command_prints_a_row_per_available_path(tmp_path, capsys, monkeypatch):
    fake = {p: Peak(p, "k", 2, 1e9 * (i + 1)) for i, p in enumerate(("fp32", "bf16", "int8"))}
    monkeypatch.setattr(bench_mod, "measure_peaks", lambda threads, seconds=0.3: fake)
    args = ["bench", "--height", "64", "--width", "32", "--batch", "2", "--seconds", "0.01"]
    assert main([*args, "--rounds", "1", "--json", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "img/s" in line]
    rows = [line.split("img/s")[0].rsplit(None, 1)[0].strip() for line in lines]
    assert rows == _available(), out
    run = json.loads((tmp_path / "b.json").read_text())["runs"][0]
    assert (run["arch"], run["batch"]) == ("osnet_x0_25", 2)
    for row in run["rows"]:
        assert row["images_per_s"] > 0 and row["peak_fraction"] > 0
        assert (row["limit"] is None) == (row["peak_fraction"] >= 0.5)
    base = next(r for r in run["rows"] if r["path"] == run["rows"][0]["baseline"])
    assert base["ratio"] == 1.0
