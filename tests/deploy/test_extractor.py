import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnireid.data.datasets import load_dataset
from omnireid.data.datasets.base import Sample
from omnireid.data.transforms import build_eval_transform
from omnireid.deploy.extractor import (
    BACKENDS,
    FeatureExtractor,
    choose_backend,
    graph_runtime,
)
from omnireid.deploy.onnx import export_onnx
from omnireid.errors import CheckpointError, DegenerateFeaturesError, ExportError, UsageError
from omnireid.evaluation.features import extract_features
from omnireid.models import build, load_for_inference
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing
from tests.deploy.helpers import degenerate, nan_initializer, trained_like

SIZE = (64, 32)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "osnet_x0_25.pt"
    torch.save(trained_like("osnet_x0_25").state_dict(), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Five colourful PNGs of different sizes (lossless: files and arrays hold the same pixels)."""
    folder = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(120, 50), (80, 40), (64, 32), (200, 90), (33, 17)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pixels[: h // 2, :, 0] = 255  # a red top half: RGB and BGR differ
        paths.append(folder / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def _extractor(weights, **kw) -> FeatureExtractor:
    kw.setdefault("input_size", SIZE)
    return FeatureExtractor(weights, arch="osnet_x0_25", **kw)


def test_paths_give_the_evaluation_pipelines_features(weights, images):
    model, _ = load_for_inference(weights)
    samples = [Sample(str(p), 0, 0) for p in images]
    expected = extract_features(model, samples, build_eval_transform(*SIZE), progress=False).feats
    got = _extractor(weights, normalize=False)(images)
    assert got.dtype == np.float32 and got.shape == (5, 512)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=0)
    unit = _extractor(weights)(images)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(unit, got / np.linalg.norm(got, axis=1, keepdims=True), atol=1e-6)


def test_every_input_type_gives_the_same_features(weights, images):
    extractor = _extractor(weights)
    expected = extractor([str(p) for p in images])
    arrays = [np.asarray(Image.open(p)) for p in images]
    tensors = [build_eval_transform(*SIZE)(Image.open(p).convert("RGB")) for p in images]
    same = {
        "Path": extractor(images),
        "PIL": extractor([Image.open(p) for p in images]),
        "RGB array": extractor(arrays),
        "BGR array": extractor([a[:, :, ::-1] for a in arrays], bgr=True),
        "CHW tensors": extractor(tensors),
        "NCHW tensor": extractor(torch.stack(tensors)),
        "mixed": extractor([images[0], arrays[1], tensors[2], Image.open(images[3]), images[4]]),
        "singles": np.concatenate([extractor(a) for a in arrays]),
    }
    for name, got in same.items():
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0, err_msg=name)
    rgb_read_as_bgr = extractor(arrays[0], bgr=True)
    assert np.abs(rgb_read_as_bgr - expected[:1]).max() > 1e-3


def test_batches_need_not_divide_the_count(weights, images):
    whole = _extractor(weights, batch_size=32)(images)
    tensors = torch.stack([build_eval_transform(*SIZE)(Image.open(p)) for p in images])
    for batch_size in (1, 2, 3):
        extractor = _extractor(weights, batch_size=batch_size)
        np.testing.assert_allclose(extractor(images), whole, atol=1e-5, rtol=0)
        np.testing.assert_allclose(extractor([tensors[:3], tensors[3:]]), whole, atol=1e-5)
    assert _extractor(weights)([]).shape == (0, 512)


@pytest.mark.parametrize("arch", ["osnet_x0_25", "osnet_ain_x0_25"])
def test_backends_agree(arch, images, tmp_path):
    path = tmp_path / f"{arch}.pt"
    torch.save(trained_like(arch).state_dict(), path)
    common = dict(input_size=SIZE, batch_size=2, normalize=False)
    expected = FeatureExtractor(path, arch=arch, **common)(images)
    assert np.abs(expected).max() > 1e-2
    for backend in ("fast", "onnxruntime"):
        got = FeatureExtractor(path, arch=arch, backend=backend, **common)(images)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0, err_msg=backend)


def test_onnx_path_with_a_fixed_batch_is_padded(weights, images, tmp_path):
    onnx_file = export_onnx(load_for_inference(weights)[0], tmp_path / "m.onnx", SIZE, False)
    extractor = FeatureExtractor(  # a graph without a contract: arch names it
        arch="osnet_x0_25",
        input_size=SIZE,
        backend="onnxruntime",
        batch_size=3,
        onnx_path=onnx_file,
    )
    assert (extractor.arch, extractor.feature_dim, extractor.input_size) == (
        "osnet_x0_25",
        512,
        SIZE,
    )
    np.testing.assert_allclose(extractor(images), _extractor(weights)(images), atol=1e-4)
    with pytest.raises(ExportError, match=r"takes \[1, 3, 64, 32\].*gives \(N, 3, 256, 128\)"):
        FeatureExtractor(backend="onnxruntime", onnx_path=onnx_file)
    with pytest.raises(UsageError, match="not both"):
        FeatureExtractor(weights, arch="osnet_x0_25", input_size=SIZE, backend="onnxruntime",
                         onnx_path=onnx_file)  # fmt: skip


def test_checkpoint_without_classifier_loads_and_mismatches_raise(weights, images, tmp_path):
    state = torch.load(weights, weights_only=True)
    headless = tmp_path / "headless.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith("classifier")}, headless)
    np.testing.assert_allclose(_extractor(headless)(images), _extractor(weights)(images), atol=1e-6)
    assert load_for_inference(weights)[0].classifier.out_features == 10
    with pytest.raises(CheckpointError, match=r"osnet_x0_25\.pt.*missing keys.*architecture"):
        FeatureExtractor(weights, arch="osnet_ain_x0_25")


def test_clear_errors(weights, images, tmp_path):
    extractor = _extractor(weights)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(OSError, match=r"broken\.jpg"):
        extractor([images[0], broken])
    with pytest.raises(OSError, match=r"missing\.png"):
        extractor(tmp_path / "missing.png")
    with pytest.raises(TypeError, match=r"input 1: expected an \(H, W, 3\) uint8 array"):
        extractor([images[0], np.zeros((64, 32, 3), np.float32)])
    with pytest.raises(TypeError, match=r"H, W = \(64, 32\), got \(3, 256, 128\)"):
        extractor(torch.zeros(3, 256, 128))
    with pytest.raises(TypeError, match="got int"):
        extractor([3])
    with pytest.raises(UsageError, match="backend must be one of"):
        _extractor(weights, backend="tensorrt")
    with pytest.raises(UsageError, match="batch_size must be an integer >= 1, got 0"):
        _extractor(weights, batch_size=0)
    with pytest.raises(UsageError, match="precision must be one of"):
        _extractor(weights, precision="int4")
    with pytest.raises(UsageError, match="needs a CUDA device"):
        _extractor(weights, precision="fp16")
    with pytest.raises(UsageError, match="int8-calib"):
        FeatureExtractor(ModelSpec("osnet_x0_25"), backend="onnxruntime", precision="bf16")
    with pytest.raises(UsageError, match="give a model: weights"):
        FeatureExtractor()


def test_bf16_features_stay_close_to_fp32(market_weights, market_mini):
    # bf16 keeps 8 bits of mantissa: the real checkpoint's features move, but by little, and
    # every query image stays nearest to its own fp32 feature.
    paths = [s.path for s in load_dataset("market1501", market_mini).query[:8]]
    fp32 = FeatureExtractor(market_weights, arch="osnet_x0_25")(paths)
    bf16 = FeatureExtractor(market_weights, arch="osnet_x0_25", backend="torch", precision="bf16")(
        paths
    )
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)
    cosine = (fp32 * bf16).sum(1)  # both L2-normalised
    assert cosine.min() > 0.999, cosine  # measured 0.9995-0.9998
    assert (np.argmax(bf16 @ fp32.T, axis=1) == np.arange(8)).all()


def test_extract_paths_with_progress_gives_the_same_features(weights, images):
    extractor = _extractor(weights)
    feats = extractor.extract_paths(images, show_progress=True)
    np.testing.assert_array_equal(feats, extractor(images))


def test_real_checkpoint_through_onnxruntime(market_weights, market_mini):
    dataset = load_dataset("market1501", market_mini)
    query, gallery = dataset.query[:8], dataset.gallery
    extractor = FeatureExtractor(
        market_weights, arch="osnet_x0_25", backend="onnxruntime", normalize=False
    )
    model, pre = load_for_inference(market_weights)
    assert pre.input_size == (256, 128)  # a plain weights file: the default preprocessing
    expected = extract_features(model, query, build_eval_transform(), progress=False).feats
    q = extractor.extract_paths([s.path for s in query], show_progress=False)
    np.testing.assert_allclose(q, expected.numpy(), atol=1e-4, rtol=0)
    # The trained model finds each query's identity first in the gallery (another camera).
    g = extractor.extract_paths([s.path for s in gallery], show_progress=False)
    dist = ((q[:, None] - g[None]) ** 2).sum(-1)
    g_pids, g_cams = np.array([s.pid for s in gallery]), np.array([s.camid for s in gallery])
    hits = 0
    for i, s in enumerate(query):
        keep = ~((g_pids == s.pid) & (g_cams == s.camid)) & (g_pids != -1)
        hits += g_pids[keep][np.argmin(dist[i][keep])] == s.pid
    assert hits >= 7


def test_a_training_checkpoint_brings_its_own_preprocessing(images, tmp_path):
    """STYLE 6: arch, input size, mean and std come from meta.json, not from the caller."""
    from omnireid.engine.checkpoint import save_checkpoint

    model = trained_like("osnet_x0_25")
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    pre = {"height": 64, "width": 32, "mean": mean, "std": std}
    save_checkpoint(tmp_path / "run", model, 3, meta={"arch": "osnet_x0_25", "preprocessing": pre})
    extractor = FeatureExtractor.from_checkpoint(tmp_path / "run", normalize=False)
    assert (extractor.arch, extractor.input_size) == ("osnet_x0_25", (64, 32))
    transform = build_eval_transform(64, 32, mean=mean, std=std)
    from omnireid.data.images import read_image

    x = torch.stack([transform(read_image(p)) for p in images[:2]])
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    np.testing.assert_allclose(extractor(images[:2]), expected, atol=1e-5)
    plain = FeatureExtractor.from_checkpoint(_plain(tmp_path))  # arch from the tensors
    assert (plain.arch, plain.input_size) == ("osnet_x0_25", (256, 128))


def _plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.pt"
    torch.save(trained_like("osnet_x0_25").state_dict(), path)
    return path


# --- nothing wrong passes as right, on any backend --------------------------------------------
LOCAL_BACKENDS = ("torch", "fast", "onnxruntime")  # openvino: tests/deploy/test_openvino.py


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_nan_input_is_refused_on_every_backend(weights, images, backend):
    """The fused ReLU of the fast backend (and OpenVINO's) turns NaN into 0: the input is
    checked before any backend runs."""
    extractor = _extractor(weights, backend=backend)
    x = torch.stack([build_eval_transform(*SIZE)(Image.open(p).convert("RGB")) for p in images])
    x[1, 0, 5, 5] = float("nan")
    with pytest.raises(UsageError, match="input 0: the tensor holds NaN or infinite values"):
        extractor(x)
    with pytest.raises(UsageError, match="input 2: the tensor"):
        extractor([images[0], images[1], x[1]])


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_one_feature_for_different_images_is_refused_on_every_backend(images, backend, tmp_path):
    path = tmp_path / "zero_conv1.pt"
    torch.save(degenerate().state_dict(), path)
    extractor = _extractor(path, backend=backend)
    with pytest.raises(DegenerateFeaturesError, match="all 5 images gave the same feature"):
        extractor(images)
    # one image, or copies of one, cannot be told apart from a working model: they pass
    assert extractor(images[:1]).shape == (1, 512)
    assert extractor([images[2]] * 3).shape == (3, 512)


def test_damaged_weights_the_fast_backend_would_hide_are_refused_when_loaded(weights, tmp_path):
    """A negative BatchNorm variance is finite, but its sqrt is NaN: the plain model gives NaN
    features, the fast one (folded, fused ReLU) zeros in that channel. Refused at load."""
    state = torch.load(weights, weights_only=True)
    state["conv2.0.conv1.bn.running_var"][3] = -0.5
    torch.save(state, tmp_path / "negative_var.pt")
    for backend in ("torch", "fast"):
        with pytest.raises(CheckpointError, match=r"negative BatchNorm variances in 1 tensor\(s\)"):
            _extractor(tmp_path / "negative_var.pt", backend=backend)


def test_an_onnx_graph_with_a_nan_weight_is_refused(weights, images, tmp_path):
    good = export_onnx(load_for_inference(weights)[0], tmp_path / "m.onnx", SIZE)
    name = nan_initializer(good, tmp_path / "bad.onnx")
    with pytest.raises(ExportError, match=rf"bad\.onnx holds NaN.*1 tensor\(s\), e\.g\. {name}"):
        FeatureExtractor(backend="onnxruntime", onnx_path=tmp_path / "bad.onnx", input_size=SIZE)
    extractor = FeatureExtractor(backend="onnxruntime", onnx_path=good, input_size=SIZE)
    assert extractor(images).shape == (5, 512)


def test_a_16_bit_grey_png_gives_the_features_of_its_8_bit_reading(weights, tmp_path):
    """As a path and as a PIL image: PIL's own convert("RGB") made it a white image."""
    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(64, 32) * 31).astype(np.uint16)
    Image.frombytes("I;16", (32, 64), ramp.astype("<u2").tobytes()).save(tmp_path / "g16.png")
    Image.fromarray((ramp >> 8).astype(np.uint8), "L").save(tmp_path / "g8.png")
    extractor = _extractor(weights)
    expected = extractor(tmp_path / "g8.png")
    white = extractor(Image.new("RGB", (32, 64), (255, 255, 255)))
    assert np.abs(expected - white).max() > 1e-3  # the test can tell them apart
    np.testing.assert_allclose(extractor(tmp_path / "g16.png"), expected, atol=1e-6)
    with Image.open(tmp_path / "g16.png") as image:
        np.testing.assert_allclose(extractor(image), expected, atol=1e-6)


def test_a_loaded_model_or_a_spec_is_taken_and_the_spec_of_what_runs_kept(weights, images):
    model, _ = load_for_inference(weights, height=SIZE[0], width=SIZE[1])
    from_model = FeatureExtractor(model, backend="torch")
    np.testing.assert_allclose(
        from_model(images), _extractor(weights, backend="torch")(images), atol=1e-6, rtol=0
    )
    spec = from_model.spec
    assert (spec.arch, spec.feature_dim, spec.preprocessing.input_size) == (
        "osnet_x0_25",
        512,
        SIZE,
    )
    assert spec.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    wider = FeatureExtractor(model, backend="torch", input_size=(128, 64), mean=(0.5, 0.5, 0.5))
    assert wider.spec.preprocessing == Preprocessing(128, 64, mean=(0.5, 0.5, 0.5))
    random = FeatureExtractor(ModelSpec("osnet_x0_25", preprocessing=Preprocessing(*SIZE)))
    assert random(images).shape == (5, 512) and random.spec.weights_sha256 == ""
    assert random.spec.preprocessing.input_size == SIZE


def test_what_the_extractor_cannot_take_is_refused_in_one_line(weights):
    model, _ = load_for_inference(weights)
    with pytest.raises(UsageError, match="the OSNet carries no ModelSpec"):
        FeatureExtractor(build("osnet_x0_25", num_classes=2))
    with pytest.raises(UsageError, match="names no architecture"):
        FeatureExtractor(ModelSpec(""))
    with pytest.raises(UsageError, match="arch overrides the architecture of weights"):
        FeatureExtractor(model, arch="osnet_x1_0")
    with pytest.raises(TypeError, match="positional argument"):
        FeatureExtractor(weights, "osnet_x0_25")  # keyword-only after the first


@pytest.mark.parametrize(
    ("backend", "precision", "graph", "expected"),
    [
        (None, "auto", None, "auto"),
        (None, "int8", "m.int8.onnx", "auto"),
        ("openvino", "bf16", "m.xml", "openvino"),
        ("fast", "fp32", None, "fast"),
        ("openvino", "auto", "m.onnx", "a .onnx graph runs with backend onnxruntime, not openvino"),
        ("auto", "bf16", "m.onnx", "precision bf16 is for backend openvino"),
        ("torch", "bf16", None, "precision bf16 is for backend openvino"),
        ("fast", "int8", None, "precision int8 runs an int8 graph"),
        ("tensorrt", "auto", None, "backend must be one of"),
    ],
)
def test_the_backend_choice_of_an_evaluation(backend, precision, graph, expected):
    graph = None if graph is None else graph_runtime(graph)
    if expected in BACKENDS:
        assert choose_backend(backend, precision, graph) == expected
    else:
        with pytest.raises(UsageError, match=re.escape(expected)):
            choose_backend(backend, precision, graph)


def test_a_graph_file_runs_in_the_runtime_its_suffix_names():
    assert graph_runtime("m.int8.onnx") == "onnxruntime" and graph_runtime("m.XML") == "openvino"
    with pytest.raises(UsageError, match=r"m\.pt: a graph file is a \.onnx or an OpenVINO \.xml"):
        graph_runtime("m.pt")
    with pytest.raises(UsageError, match="a graph runs in"):
        choose_backend(None, "auto", "tensorrt")
