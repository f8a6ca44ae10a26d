import subprocess
import sys

import numpy as np
import pytest

from omnireid.cli import main
from omnireid.client import GalleryClient
from omnireid.data.images import list_images
from omnireid.errors import RequestError, ServiceError
from tests.serve.helpers import READ_KEY, WRITE_KEY, unit_rows


def test_the_client_does_not_import_torch_or_the_server():
    code = (
        "import sys, omnireid.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fastapi', 'faiss')"
        " or m.startswith('omnireid.serve')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_client_round_trip_and_errors(url, tiny_world):
    images = list_images(tiny_world / "query")[:2]
    with GalleryClient(url, api_key=WRITE_KEY) as gallery:
        ids = gallery.enrol(images=images, camera=1, track_id="c7", labels={"site": "gate"})
        feats = gallery.embed(images)
        assert feats.shape == (2, 512)
        np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
        by_feature = gallery.identify(features=feats[1], k=2)[0]
        assert by_feature["match"] == ids[1] and by_feature["matches"][0]["track_id"] == "c7"
        rows = unit_rows(2, 512, seed=11)
        assert gallery.enrol(features=rows, ids=["cli-a", "cli-b"]) == ["cli-a", "cli-b"]
        assert gallery.get("cli-b")["labels"] == {}
        gallery.remove("cli-a")
        with pytest.raises(RequestError, match="404 no gallery entry 'cli-a'") as caught:
            gallery.remove("cli-a")
        assert caught.value.status == 404
        assert gallery.stats()["counts"]["removed"] >= 1
    with GalleryClient(url, api_key=READ_KEY) as reader:
        with pytest.raises(RequestError, match="403") as caught:
            reader.enrol(features=rows[:1])
        assert caught.value.status == 403
    with GalleryClient("http://127.0.0.1:9", timeout=2) as nowhere, pytest.raises(ServiceError):
        nowhere.health()


def test_gallery_verbs_of_the_cli(url, tiny_world, tmp_path, monkeypatch, capsys):
    key_file = tmp_path / "key"
    key_file.write_text(WRITE_KEY + "\n")
    images = [str(p) for p in list_images(tiny_world / "bounding_box_test")[10:12]]
    connection = ["--url", url, "--api-key-file", str(key_file)]
    assert main(["gallery", "add", *connection, *images, "--camera", "3", "--label", "k=v"]) == 0
    added = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [path for _, path in added] == images
    monkeypatch.setenv("OMNIREID_API_KEY", READ_KEY)  # the key from the environment
    assert main(["gallery", "identify", "--url", url, images[0], "--topk", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{images[0]}: same person as {added[0][0]}"
    assert "camera=3" in out[1] and "k=v" in out[1] and "same" in out[1]
    assert main(["gallery", "remove", "--url", url, added[0][0]]) == 2  # a read key
    assert "403 this API key may read but not change" in capsys.readouterr().err
    assert main(["gallery", "remove", *connection, added[0][0]]) == 0
    assert main(["gallery", "remove", *connection, added[0][0]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("omnireid gallery: error: DELETE") and "404" in err
    assert len(err.strip().splitlines()) == 1
