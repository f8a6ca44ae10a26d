"""Old names of the input size still work, each with a DeprecationWarning naming the new one."""

from __future__ import annotations

import pytest

from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.index import GalleryIndex
from omnireid.errors import UsageError
from omnireid.models import build
from omnireid.models.spec import ModelSpec
from omnireid.preprocessing import Preprocessing

SPEC = ModelSpec("osnet_x0_25", preprocessing=Preprocessing(64, 32))


def test_preprocessing_size_is_input_size_with_a_warning() -> None:
    pre = Preprocessing(128, 64)
    with pytest.warns(DeprecationWarning, match="now called Preprocessing.input_size"):
        assert pre.size == pre.input_size == (128, 64)


def test_extractor_image_size_argument_and_attribute() -> None:
    with pytest.warns(DeprecationWarning, match="image_size is deprecated.*input_size"):
        old = FeatureExtractor(SPEC, backend="torch", image_size=(32, 16))
    assert old.input_size == (32, 16) == old.spec.preprocessing.input_size
    with pytest.warns(DeprecationWarning, match="FeatureExtractor.input_size"):
        assert old.image_size == (32, 16)
    with pytest.raises(UsageError, match="give input_size only"):
        FeatureExtractor(SPEC, backend="torch", input_size=(32, 16), image_size=(32, 16))


def test_gallery_index_image_size() -> None:
    index = GalleryIndex(4, spec=SPEC)
    with pytest.warns(DeprecationWarning, match="GalleryIndex.input_size"):
        assert index.image_size == index.input_size == (64, 32)


def test_export_onnx_image_size_keyword(tmp_path) -> None:
    pytest.importorskip("onnx")
    from omnireid.deploy.onnx import export_onnx, open_session

    model = build("osnet_x0_25", num_classes=1).eval()
    with pytest.warns(DeprecationWarning, match="export_onnx"):
        path = export_onnx(model, tmp_path / "m.onnx", image_size=(32, 16))
    assert list(open_session(path).get_inputs()[0].shape[1:]) == [3, 32, 16]


def test_serve_backends_is_the_deprecated_module_of_the_stores(monkeypatch) -> None:
    """``serve.backends`` opened the vector stores; ``backend`` now names only the inference
    runners (``deploy.backends``)."""
    import importlib
    import sys

    from omnireid.serve import stores

    monkeypatch.delitem(sys.modules, "omnireid.serve.backends", raising=False)
    with pytest.warns(DeprecationWarning, match="now omnireid.serve.stores"):
        old = importlib.import_module("omnireid.serve.backends")
    assert old.open_store is stores.open_store and old.BACKENDS == stores.STORES


def test_gallery_index_metric_is_faiss_metric() -> None:
    """``metric`` means the evaluation's distance (cosine, euclidean); FAISS's ip / l2 of an
    index is ``faiss_metric`` (the header keeps its key "metric")."""
    with pytest.warns(DeprecationWarning, match="now called faiss_metric"):
        index = GalleryIndex(4, metric="l2")
    assert index.faiss_metric == "l2"
    with pytest.warns(DeprecationWarning, match="GalleryIndex.faiss_metric"):
        assert index.metric == "l2"


def test_index_build_metric_flag_is_faiss_metric(caplog) -> None:
    from omnireid.cli import parse
    from omnireid.cli.common import check_renamed_flags

    build = ["index", "build", "--weights", "w.pt", "--images", "imgs", "--out", "idx"]
    assert parse([*build, "--faiss-metric", "l2"]).faiss_metric == "l2"
    old = parse([*build, "--metric", "l2"])
    with caplog.at_level("WARNING", logger="omnireid"):
        check_renamed_flags(old)
    assert (
        old.faiss_metric == "l2"
        and "--metric is deprecated: it is now --faiss-metric" in caplog.text
    )
    with pytest.raises(UsageError, match="give --faiss-metric only"):
        check_renamed_flags(parse([*build, "--faiss-metric", "ip", "--metric", "l2"]))
