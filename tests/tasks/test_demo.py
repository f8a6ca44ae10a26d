"""The demo pipeline end to end on a tiny synthetic world: training must beat the untrained net."""

import json

import pytest
from PIL import Image

from omnireid.tasks.demo import run_demo
from tests.visualize.images import check_image


@pytest.mark.slow
def test_tiny_demo_learns_and_writes_its_report(tmp_path):
    world = {
        "num_ids_train": 20,
        "num_ids_test": 10,
        "images_per_id_per_cam": 3,
        "num_distractors": 10,
    }
    result = run_demo(tmp_path, epochs=8, height=64, width=32, world_options=world, workers=0)
    trained, untrained = result["trained"], result["untrained"]
    # Measured: untrained mAP ~8-10, trained ~30-36 after 8 epochs; demand a wide margin.
    assert trained["mAP"] > untrained["mAP"] + 10
    assert trained["rank1"] > untrained["rank1"]
    report = (tmp_path / "report.md").read_text()
    assert "| trained |" in report and "curves.png" in report
    with Image.open(tmp_path / "curves.png") as img:
        assert img.size[0] > 600 and img.size[1] > 200
        assert len(img.convert("L").getcolors(maxcolors=1 << 16)) > 10  # not blank
    check_image(tmp_path / "curves.png", (1875, 350))
    html = (tmp_path / "ranking" / "index.html").read_text()
    assert "ranking/index.html" in report and "rank1" in html
    strips = sorted((tmp_path / "ranking" / "strips").glob("q*.png"))
    assert len(strips) == 25  # the 20 worst and 5 best of the 40 queries
    for strip in strips:  # query + top 10 of 32 px, 12 px after the query, 3 px between
        check_image(strip, (11 * 32 + 12 + 9 * 3, 64 + 42))
        assert strip.name in html
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["trained"]["epoch"] == 8
