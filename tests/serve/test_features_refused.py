"""Features that would lie (deploy's ``FeatureCheck``: one feature for several different
images, NaN) are refused by the service as a 4xx naming why, never a 500, and a model that
gives them is not served at all."""

import httpx
import pytest
import torch

from omnireid.cli import main
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.serve.app import create_app
from omnireid.serve.auth import ApiKeys
from omnireid.serve.service import GalleryService
from omnireid.serve.stores import open_store
from tests.deploy.helpers import degenerate
from tests.serve.conftest import LIMITS
from tests.serve.helpers import b64, png_bytes, serving_in_thread


@pytest.fixture(scope="module")
def degenerate_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("degenerate") / "degenerate.pt"
    torch.save(degenerate().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def http(degenerate_weights, tmp_path_factory):
    extractor = FeatureExtractor.from_checkpoint(degenerate_weights, input_size=(128, 64))
    meta = {"dim": extractor.feature_dim, "arch": extractor.arch}
    store = open_store("faiss", tmp_path_factory.mktemp("gallery"), meta)
    service = GalleryService(store, extractor, None, LIMITS)
    with (
        serving_in_thread(create_app(service, ApiKeys.from_keys([], []))) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client
    service.close()
    store.close()


TWO = [b64(png_bytes(64, 128, (200, 40, 40))), b64(png_bytes(64, 128, (20, 90, 200)))]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/embed", {"images": TWO}),
        ("/identify", {"images": TWO}),
        ("/gallery", {"items": [{"image": TWO[0], "id": "a"}, {"image": TWO[1], "id": "b"}]}),
    ],
)
def test_one_feature_for_different_images_is_a_422_not_a_500(http, path, body):
    answer = http.post(path, json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("no features for these images: all 2 images gave the same feature")
    assert http.get("/health").json()["entries"] == 0  # nothing was enrolled


def test_serve_refuses_weights_that_give_every_image_one_feature(
    tmp_path, degenerate_weights, capsys
):
    """One image at a time cannot show it; the server checks two at start."""
    args = ["serve", "--index", str(tmp_path / "g"), "--weights", str(degenerate_weights)]
    assert main([*args, "--no-auth", "--height", "128", "--width", "64"]) == 2
    err = capsys.readouterr().err  # the inference path's log line, then the refusal
    assert "Traceback" not in err and err.count("error:") == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"omnireid serve: error: {degenerate_weights}: not served: all 2 "), err
    assert not (tmp_path / "g").exists()
