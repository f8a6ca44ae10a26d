"""check-pipeline: each integration variant computed by hand, the rows against evaluate_model."""

import io
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from omnireid.cli import main
from omnireid.data.datasets import load_dataset
from omnireid.data.transforms import build_eval_transform, transform_for
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.pipeline import Labels, check_pipeline, format_table, variants
from omnireid.evaluation.evaluate import evaluate_model
from omnireid.evaluation.features import Embedder
from omnireid.models import load_for_inference
from omnireid.preprocessing import Preprocessing

PRE = Preprocessing(64, 32)
SIZE = ["--height", "64", "--width", "32"]


@pytest.fixture(scope="module")
def crop() -> Image.Image:
    """A 30 x 60 (height x width) crop: wider than the 64 x 32 input, shrunk 2x or more."""
    pixels = np.random.default_rng(2).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    pixels[:, :30, 0] = 250
    return Image.fromarray(pixels)


def _prepared(crop: Image.Image) -> dict[str, np.ndarray]:
    return {v.name: v.prepare(crop, PRE) for v in variants(jpeg_quality=60)}


def test_the_reference_is_the_evaluation_transform_bit_for_bit(crop):
    ref = _prepared(crop)["reference"]
    normalised = build_eval_transform(64, 32)(crop)  # what evaluate and the extractor feed
    mean, std = torch.tensor(PRE.mean).view(3, 1, 1), torch.tensor(PRE.std).view(3, 1, 1)
    again = (torch.from_numpy(ref).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(again, normalised, atol=1e-6, rtol=0)
    assert torch.equal(transform_for(PRE)(crop), normalised)


def test_each_variant_is_the_shortcut_it_names(crop):
    got, rgb = _prepared(crop), np.asarray(crop)
    np.testing.assert_array_equal(got["bgr"], got["reference"][:, :, ::-1])
    linear = cv2.resize(rgb, (32, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(got["opencv_linear"], linear)
    np.testing.assert_array_equal(got["bgr+opencv_linear"], linear[:, :, ::-1])
    np.testing.assert_array_equal(
        got["opencv_area"], cv2.resize(rgb, (32, 64), interpolation=cv2.INTER_AREA)
    )
    assert np.abs(linear.astype(int) - got["reference"]).max() > 10  # shrinking: no antialias
    # letterbox: 30x60 scaled by 32/60 to 16x32, rows 24..39 of the 64, grey above and below
    box = got["letterbox"]
    assert (box[:24] == 114).all() and (box[40:] == 114).all()
    np.testing.assert_array_equal(box[24:40], np.asarray(crop.resize((32, 16), Image.BILINEAR)))
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=60)
    again = Image.open(buffer).convert("RGB").resize((32, 64), Image.BILINEAR)
    np.testing.assert_array_equal(got["jpeg_q60"], np.asarray(again))
    np.testing.assert_array_equal(got["no_l2"], got["reference"])


def test_rows_match_an_independent_evaluation(tiny_world, toy_weights):
    dataset = load_dataset("market1501", tiny_world)
    samples = [*dataset.query, *dataset.gallery]
    paths = [s.path for s in samples]
    labels = Labels(
        np.array([s.pid for s in samples]), np.array([s.camid for s in samples]), len(dataset.query)
    )
    engine = FeatureExtractor(toy_weights, input_size=(64, 32), normalize=False)
    rows = check_pipeline(engine.runner, paths, PRE, labels=labels, batch_size=7, jpeg_quality=90)
    by_name = {r.name: r for r in rows}
    assert [r.name for r in rows][:2] == ["reference", "bgr"] and "jpeg_q90" in by_name
    model, _ = load_for_inference(toy_weights)
    embedder = Embedder.of_model(model, Preprocessing(64, 32))
    for name, normalize in (("reference", True), ("no_l2", False)):
        ev = evaluate_model(embedder, dataset, normalize=normalize, progress=False)
        expected = ev.result.as_dict()
        # an untrained model's near-ties may swap with rounding: 0.01 points
        assert by_name[name].metrics["rank1"] == pytest.approx(expected["rank1"], abs=1e-6)
        assert by_name[name].metrics["mAP"] == pytest.approx(expected["mAP"], abs=1e-2)
    # BGR by hand: the extractor told an RGB image is BGR reverses its channels
    unit = FeatureExtractor(toy_weights, input_size=(64, 32))
    rgb = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    cosine = (unit(rgb, bgr=True) * unit(rgb)).sum(1)
    assert by_name["bgr"].cos_mean == pytest.approx(cosine.mean(), abs=1e-5)
    assert by_name["bgr"].cos_min == pytest.approx(cosine.min(), abs=1e-5)
    assert by_name["reference"].cos_min == pytest.approx(1, abs=1e-6)
    assert by_name["no_l2"].cos_min == pytest.approx(1, abs=1e-6)  # cosine ignores the scale
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| ΔmAP |" in table.splitlines()[0]


def test_cli_with_an_exported_graph_writes_table_json_and_chart(tiny_world, toy_weights, tmp_path):
    assert (
        main(["export", "onnx", "--weights", str(toy_weights), *SIZE, "--out", str(tmp_path)]) == 0
    )
    graph = tmp_path / "osnet_x0_25_toy.onnx"
    out = tmp_path / "check"
    args = ["check-pipeline", "--weights", str(toy_weights), *SIZE, "--onnx", str(graph)]
    images = ["--images", str(tiny_world / "query"), "--limit", "9"]
    assert main([*args, *images, "--out", str(out)]) == 0
    rows = json.loads((out / "pipeline.json").read_text())["rows"]
    assert [r["name"] for r in rows[:3]] == ["reference", "deployed graph", "bgr"]
    assert rows[1]["cos_min"] > 1 - 1e-6 and rows[2]["cos_mean"] < 0.9999  # float32 cosines
    assert (out / "pipeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| deployed graph |" in (out / "pipeline.md").read_text()


def test_cli_refuses_a_graph_fed_otherwise_than_its_weights(
    toy_weights, tiny_world, tmp_path, capsys
):
    export = ["export", "onnx", "--weights", str(toy_weights), *SIZE, "--out", str(tmp_path)]
    assert main(export) == 0  # the 64x32 graph the refusal below is about
    graph = tmp_path / "osnet_x0_25_toy.onnx"
    assert graph.is_file()
    capsys.readouterr()
    args = ["check-pipeline", "--weights", str(toy_weights), "--images", str(tiny_world)]
    assert main([*args, "--onnx", str(graph)]) == 2  # the weights alone say 256x128
    err = capsys.readouterr().err
    assert "the graph is fed differently from its weights" in err and "64" in err
    assert main([*args, "--dataset", "market1501"]) == 2  # one of --images / --dataset
    assert "give --images DIR or --dataset NAME --root DIR" in capsys.readouterr().err


def test_a_degenerate_model_gives_no_table(tiny_world, tmp_path, capsys):
    """Every image the same feature: every cosine would be 1 and every rank a tie; refused,
    naming the run, as evaluation and extraction refuse it."""
    from tests.deploy.helpers import degenerate

    zero = tmp_path / "zero_conv1.pt"
    torch.save(degenerate().state_dict(), zero)
    args = ["check-pipeline", "--weights", str(zero), *SIZE, "--images", str(tiny_world / "query")]
    assert main([*args, "--limit", "6", "--out", str(tmp_path / "check")]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("omnireid check-pipeline: error")]
    assert "Traceback" not in err and len(lines) == 1
    assert "all 6 images (reference) gave the same feature" in lines[0]
    assert not (tmp_path / "check" / "pipeline.json").exists()
