import base64

import numpy as np
import pytest
from PIL import Image

from omnireid.data.images import is_image, list_images, parse_market_name, read_image, to_rgb
from tests.helpers import handmade_png


def test_parse_market_name_gives_zero_based_cameras():
    assert parse_market_name("/x/0002_c1s1_000451_03.jpg") == (2, 0)
    assert parse_market_name("-1_c3s2_000001_01.jpg") == (-1, 2)
    assert parse_market_name("0000_c6s4_002202_05.jpg") == (0, 5)
    assert parse_market_name("0007_c12_f0001.jpg") == (7, 11)  # more than 9 cameras
    assert parse_market_name("camera7/frame_0001.png") is None


def test_list_images_recursive_flat_limited_and_empty(tmp_path):
    (tmp_path / "cam1").mkdir()
    for name in ("b.jpg", "a.PNG", "notes.txt", "cam1/c.jpeg", "d.webp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.jpg", "c.jpeg", "d.webp"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.PNG", "b.jpg", "d.webp"]
    assert len(list_images(tmp_path, limit=2)) == 2
    # files are taken as given, folders searched, in the order of the sources
    files = list_images([tmp_path / "cam1" / "c.jpeg", tmp_path / "cam1"])
    assert [p.name for p in files] == ["c.jpeg", "c.jpeg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        list_images(tmp_path / "empty")
    assert list_images(tmp_path / "empty", allow_empty=True) == []
    with pytest.raises(FileNotFoundError, match="no image file or folder"):
        list_images(tmp_path / "missing")
    assert is_image("X.JPG") and not is_image("x.txt")


def test_read_image_names_the_file_it_cannot_read(tmp_path):
    good = tmp_path / "good.png"
    Image.new("L", (4, 6), 128).save(good)
    assert read_image(good).mode == "RGB" and read_image(good).size == (4, 6)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(OSError, match=r"bad\.jpg"):
        read_image(bad)


def test_a_decompression_bomb_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    Image.new("RGB", (100, 100)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels > 2 x the limit
    with pytest.raises(OSError, match=r"bomb\.png.*decompression bomb"):
        read_image(bomb)


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of ``(H, W)`` grey or ``(H, W, 3)`` RGB ``uint16`` pixels, written by hand
    (zlib + CRC), so the file holds exactly these values whatever PIL's writer does."""
    h, w = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(h))
    return handmade_png(w, h, rows, bit_depth=16, colour=colour)


# 16-bit values and their 8-bit reading, by hand: the high byte (v >> 8)
GREY_16 = np.array([[0, 255, 256, 32768, 65280, 65535]], np.uint16)
GREY_8 = [0, 0, 1, 128, 255, 255]
RGB_16 = np.array([[[0, 65535, 256], [4660, 60875, 256], [32896, 32639, 256], [65535, 0, 256]]],
                  np.uint16)  # fmt: skip
RGB_8 = [[0, 255, 1], [18, 237, 1], [128, 127, 1], [255, 0, 1]]


def test_16_bit_grey_pngs_are_scaled_not_white(tmp_path):
    hand = tmp_path / "grey16.png"
    hand.write_bytes(png16(GREY_16))
    little, big = tmp_path / "grey16_le.png", tmp_path / "grey16_be.png"
    Image.frombytes("I;16", (6, 1), GREY_16.astype("<u2").tobytes()).save(little)
    Image.frombytes("I;16B", (6, 1), GREY_16.astype(">u2").tobytes()).save(big)
    for path in (hand, little, big):
        with Image.open(path) as opened:
            assert opened.mode in ("I;16", "I;16B", "I")  # PIL's own convert would clip to 255
        rgb = np.asarray(read_image(path))
        assert rgb.shape == (1, 6, 3)
        assert rgb[0, :, 0].tolist() == GREY_8, path.name
        assert (rgb == rgb[..., :1]).all()  # grey: R = G = B
    # in memory too, in both byte orders (what the extractor's PIL input gets)
    for mode, order in (("I;16", "<u2"), ("I;16B", ">u2")):
        image = Image.frombytes(mode, (6, 1), GREY_16.astype(order).tobytes())
        assert np.asarray(to_rgb(image))[0, :, 1].tolist() == GREY_8


def test_16_bit_rgb_pngs_read_as_their_high_bytes(tmp_path):
    path = tmp_path / "rgb16.png"
    path.write_bytes(png16(RGB_16))
    assert np.asarray(read_image(path))[0].tolist() == RGB_8
    # one picture as 16-bit grey or as 16-bit RGB with equal channels: the same 8-bit pixels
    grey, rgb = tmp_path / "g.png", tmp_path / "c.png"
    grey.write_bytes(png16(GREY_16))
    rgb.write_bytes(png16(np.repeat(GREY_16[..., None], 3, axis=2)))
    assert np.array_equal(np.asarray(read_image(grey)), np.asarray(read_image(rgb)))


def test_the_service_decodes_16_bit_pngs_the_same_way():
    from omnireid.serve.limits import Limits, decode_pixels, open_image

    for pixels, expected in ((GREY_16, [[v] * 3 for v in GREY_8]), (RGB_16, RGB_8)):
        image = open_image(base64.b64encode(png16(pixels)).decode(), 0, Limits())
        assert np.asarray(decode_pixels(image, 0))[0].tolist() == expected


def test_32_bit_images_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.full((4, 4), 0.5, np.float32), "F").save(path)
    with pytest.raises(OSError, match=r"float\.tiff: a 32-bit float image \(PIL mode F\)"):
        read_image(path)
    with pytest.raises(OSError, match=r"a 32-bit integer image \(PIL mode I\)"):
        to_rgb(Image.fromarray(np.full((4, 4), 70000, np.int32), "I"))
