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
