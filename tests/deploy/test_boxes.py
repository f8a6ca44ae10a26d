"""``FeatureExtractor.extract_boxes``: an OpenCV frame and detector boxes -> one row per box."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from omnireid.data.transforms import build_eval_transform
from omnireid.deploy.boxes import pixel_boxes
from omnireid.deploy.extractor import FeatureExtractor
from omnireid.errors import UsageError
from omnireid.models import load_for_inference

SIZE = (64, 32)
BOXES = [
    [10.4, 5.7, 50.2, 100.9],  # inside: pixels 10..50 x 5..100
    [-20, -10, 30, 60],  # over the top-left corner: clipped to 0..29 x 0..59
    [150, 100, 400, 300],  # over the bottom-right corner: 150..159 x 100..119
    [200, 10, 260, 50],  # right of the frame: degenerate
    [20, 20, 20, 80],  # zero width: degenerate
    [float("nan"), 0, 10, 10],  # not finite: degenerate
]
CROPS = [
    (slice(5, 101), slice(10, 51)),
    (slice(0, 60), slice(0, 30)),
    (slice(100, 120), slice(150, 160)),
]


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    pixels = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    pixels[:, :80, 2] = 255  # a strong red (BGR) left half: channel order matters
    return pixels


def _expected(weights, crops_rgb: list[np.ndarray]) -> np.ndarray:
    model, _ = load_for_inference(weights)
    transform = build_eval_transform(*SIZE)
    x = torch.stack([transform(Image.fromarray(np.ascontiguousarray(c))) for c in crops_rgb])
    with torch.no_grad():
        return torch.nn.functional.normalize(model(x), dim=1).numpy()


def test_boxes_are_clipped_cropped_and_degenerate_ones_masked(toy_weights, frame, caplog):
    extractor = FeatureExtractor(toy_weights, input_size=SIZE, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        feats, valid = extractor.extract_boxes(frame, np.array(BOXES))
    assert valid.tolist() == [True, True, True, False, False, False]
    assert feats.shape == (6, 512) and feats.dtype == np.float32
    expected = _expected(toy_weights, [frame[r, c][:, :, ::-1] for r, c in CROPS])  # BGR -> RGB
    np.testing.assert_allclose(feats[:3], expected, atol=1e-5)
    assert not feats[3:].any()  # zero rows: cosine 0 to every track
    assert "3 of 6 boxes are empty inside the 120x160 frame" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="omnireid"):
        extractor.extract_boxes(frame, BOXES)  # a list works too
    assert caplog.text == ""  # warned once per extractor


def test_rgb_frames_and_no_boxes(toy_weights, frame):
    extractor = FeatureExtractor(toy_weights, input_size=SIZE)
    feats, valid = extractor.extract_boxes(frame, BOXES[:1], bgr=False)
    r, c = CROPS[0]
    np.testing.assert_allclose(feats, _expected(toy_weights, [frame[r, c]]), atol=1e-5)
    feats, valid = extractor.extract_boxes(frame, np.zeros((0, 4)))
    assert feats.shape == (0, 512) and valid.shape == (0,)


def test_bad_frames_and_boxes_are_refused(toy_weights, frame):
    extractor = FeatureExtractor(toy_weights, input_size=SIZE)
    with pytest.raises(UsageError, match=r"frame: expected an \(H, W, 3\) uint8"):
        extractor.extract_boxes(frame.astype(np.float32), BOXES)
    with pytest.raises(UsageError, match=r"boxes: expected an \(N, 4\) xyxy array"):
        extractor.extract_boxes(frame, [[0, 0, 10]])


def test_pixel_bounds_cover_every_pixel_a_box_touches():
    bounds, valid = pixel_boxes(np.array([[0.5, 0.5, 1.5, 1.5], [3, 3, 3.01, 4]]), 10, 10)
    assert bounds.tolist() == [[0, 0, 2, 2], [3, 3, 4, 4]] and valid.all()
