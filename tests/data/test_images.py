import pytest
from PIL import Image

from omnireid.data.images import is_image, list_images, parse_market_name, read_image


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
