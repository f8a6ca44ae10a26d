"""Python API inputs that gave a result they should not have (a feature of an empty image, a
ranking of an all-zero query), or failed deep inside with someone else's message, are refused
where they are taken, naming what is wrong."""

import math

import numpy as np
import pytest
from PIL import Image

from omnireid.adapt.api import samples_of
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.deploy.index import GalleryIndex
from omnireid.errors import CheckpointError, ExportError, UsageError
from omnireid.preprocessing import Preprocessing


@pytest.fixture(scope="module")
def extractor(toy_weights):
    return FeatureExtractor(toy_weights, input_size=(64, 32))


@pytest.mark.parametrize(
    "image",
    [np.zeros((0, 0, 3), np.uint8), np.zeros((5, 0, 3), np.uint8), Image.new("RGB", (0, 0))],
)
def test_an_image_without_pixels_gives_no_feature(extractor, image):
    """Resized, it passed for a black image and got a feature (exit 0, a wrong result)."""
    with pytest.raises(UsageError, match="pixels: there is nothing to compute a feature from"):
        extractor(image)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input_size": (10**6, 10**6)}, "height and width must be integers within [1, 4096]"),
        ({"input_size": (128.5, 64)}, "height and width must be integers within [1, 4096]"),
        ({"std": (1.0, 1.0)}, "std must be 3 finite numbers, got [1.0, 1.0]"),
        ({"mean": (math.nan, 0.5, 0.5)}, "mean must be 3 finite numbers"),
    ],
)
def test_preprocessing_values_are_checked_where_they_are_given(toy_weights, options, message):
    """A 2-value std failed in torchvision's Normalize at the first image (a RuntimeError);
    10^6 x 10^6 would have allocated terabytes at the first image."""
    with pytest.raises(CheckpointError) as caught:
        FeatureExtractor(toy_weights, **options)
    assert message in str(caught.value)
    with pytest.raises(CheckpointError):
        Preprocessing(64, True)


def test_an_all_zero_vector_has_no_direction_in_a_cosine_index():
    """Normalised, a zero row stayed zero: it was indexed, and a zero query ranked every
    gallery image at score 0 in an arbitrary order (a ranking that means nothing)."""
    feats = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="features contain an all-zero vector"):
        GalleryIndex.build(np.vstack([feats, np.zeros((1, 8), np.float32)]), list("abcde"))
    index = GalleryIndex.build(feats, list("abcd"))
    with pytest.raises(ValueError, match="queries contain an all-zero vector"):
        index.search(np.zeros((1, 8), np.float32))
    assert len(GalleryIndex.build(np.zeros((1, 8)), ["z"], faiss_metric="l2", normalize=False)) == 1


def test_adaptation_needs_images_and_one_camera_id_each():
    """One camera id for two images was an IndexError; no images a distance-matrix error."""
    with pytest.raises(UsageError, match="1 camera ids for 2 images: give one per image"):
        samples_of(["a.jpg", "b.jpg"], camids=[0])
    with pytest.raises(UsageError, match="no images to adapt to"):
        samples_of([])


def test_a_file_that_is_not_an_onnx_model_is_an_export_error(toy_weights):
    """A .pt given as a graph was protobuf's DecodeError ("Wire format was corrupt")."""
    with pytest.raises(ExportError, match=r"osnet_x0_25_toy\.pt is not an ONNX model"):
        FeatureExtractor.from_onnx(toy_weights)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "cuda:99"}, "usable CUDA GPU"),
        ({"device": "gpu-please"}, "not a device torch knows"),
        ({"batch_size": True}, "an integer >= 1, got True"),
        ({"batch_size": 2.5}, "an integer >= 1, got 2.5"),
        ({"batch_size": 0}, "an integer >= 1, got 0"),
    ],
)
def test_device_and_batch_size_are_checked_when_the_extractor_is_made(
    toy_weights, options, message
):
    with pytest.raises(UsageError, match=message):
        FeatureExtractor(toy_weights, **options)
