"""A gallery service on a real uvicorn server (thread) for the module's tests: toy OSNet x0.25
weights at 128x64, the FAISS backend, read and write keys, small limits."""

from __future__ import annotations

import pytest

from omnireid.deploy.extractor import FeatureExtractor
from omnireid.serve.app import create_app
from omnireid.serve.auth import ApiKeys
from omnireid.serve.limits import Limits
from omnireid.serve.service import GalleryService, Threshold
from omnireid.serve.store import gallery_meta
from omnireid.serve.stores import open_store
from tests.serve.helpers import READ_KEY, WRITE_KEY, serving_in_thread

LIMITS = Limits(
    max_body_bytes=1 << 20,
    max_images=4,
    max_image_side=512,
    max_image_pixels=1 << 17,
    max_request_pixels=200_000,
)
THRESHOLD = 0.9


@pytest.fixture(scope="session")
def toy_extractor(toy_weights) -> FeatureExtractor:
    return FeatureExtractor(toy_weights, input_size=(128, 64))


@pytest.fixture(scope="module")
def service(toy_extractor, tmp_path_factory) -> GalleryService:
    meta = gallery_meta(toy_extractor.spec, toy_extractor.feature_dim)
    store = open_store("faiss", tmp_path_factory.mktemp("gallery"), meta)
    yield GalleryService(store, toy_extractor, Threshold(THRESHOLD), LIMITS)
    store.close()


@pytest.fixture(scope="module")
def url(service) -> str:
    keys = ApiKeys.from_keys([READ_KEY], [WRITE_KEY])
    with serving_in_thread(create_app(service, keys)) as base:
        yield base
