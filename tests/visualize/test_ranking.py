"""Ranked results: junk removal, per-query AP, strip layout, the HTML report and its CLI hook."""

import numpy as np
import pytest

from omnireid.cli import main
from omnireid.evaluation.metrics import evaluate_rank
from omnireid.visualize.ranking import (
    draw_strip,
    rank_queries,
    select_queries,
    write_ranking_report,
)
from tests.visualize.images import check_image, write_fake_images

# Query 0 is id 1 on camera 0; gallery: id 1 same camera (junk), id 2, id 1 other camera, id 3.
DIST = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
Q_PIDS, Q_CAMS = [1, 3], [0, 0]
G_PIDS, G_CAMS = [1, 2, 1, 3], [0, 1, 1, 1]


def test_rank_queries_drops_junk_and_scores_ap_by_hand():
    first, second = rank_queries(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, topk=2)
    # Query 0: junk gallery 0 removed -> [1 (wrong), 2 (right), 3]: AP = 1/2, first hit at 2.
    assert first.gallery.tolist() == [1, 2] and first.correct.tolist() == [False, True]
    assert (first.ap, first.first_hit) == (0.5, 2)
    # Query 1 (id 3): gallery 3 is its match at rank 1.
    assert (second.gallery[0], second.ap, second.first_hit) == (3, 1.0, 1)


def test_queries_without_a_valid_match_are_left_out():
    rankings = rank_queries(DIST, [1, 5], G_PIDS, Q_CAMS, G_CAMS)
    assert [r.query for r in rankings] == [0]


def test_mean_ap_equals_protocol_map():
    rng = np.random.default_rng(0)
    dist = rng.random((20, 40))
    q_pids, g_pids = rng.integers(0, 6, 20), rng.integers(0, 6, 40)
    q_cams, g_cams = rng.integers(0, 3, 20), rng.integers(0, 3, 40)
    rankings = rank_queries(dist, q_pids, g_pids, q_cams, g_cams)
    result = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    assert len(rankings) == result.num_valid_queries
    assert np.mean([r.ap for r in rankings]) == pytest.approx(result.mAP)
    assert np.mean([r.first_hit == 1 for r in rankings]) == pytest.approx(result.cmc[0])


def test_select_queries_worst_first_then_best_without_repeats():
    rankings = rank_queries(
        np.random.default_rng(1).random((6, 8)), [0] * 6, [0] * 8, [0] * 6, [1] * 8
    )
    aps = [r.ap for r in select_queries(rankings, worst=2, best=2)]
    all_aps = sorted(r.ap for r in rankings)
    assert aps == all_aps[:2] + all_aps[-2:]
    assert len(select_queries(rankings, worst=5, best=5)) == 6


def test_strip_and_report(tmp_path):
    q_paths = write_fake_images(tmp_path / "q", ["q0.png", "q1.png"])
    g_paths = write_fake_images(tmp_path / "g", [f"g{i}.png" for i in range(4)])
    (r,) = rank_queries(DIST[:1], Q_PIDS[:1], G_PIDS, Q_CAMS[:1], G_CAMS, topk=3)
    strip = draw_strip(r, q_paths, g_paths, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, height=40, width=20)
    # Query + 3 gallery cells of 20 px, a 12 px gap after the query, 3 px between the others;
    # 3 caption lines of 14 px under the 40 px images.
    assert strip.size == (4 * 20 + 12 + 2 * 3, 40 + 3 * 14)
    pixels = np.asarray(strip)
    assert tuple(pixels[0, 20 + 12 + 1]) == (215, 0, 0)  # rank 1 is wrong: red frame
    assert tuple(pixels[0, 2 * 20 + 12 + 3 + 1]) == (0, 170, 0)  # rank 2 is right: green
    index = write_ranking_report(
        tmp_path / "report",
        DIST,
        q_paths,
        g_paths,
        Q_PIDS,
        G_PIDS,
        Q_CAMS,
        G_CAMS,
        metrics={"mAP": 75.0},
        topk=3,
        height=40,
        width=20,
    )
    html = index.read_text()
    assert html.index("strips/q00000.png") < html.index("strips/q00001.png")  # worst AP first
    assert "<th>mAP</th><td>75.00</td>" in html
    for name in ("q00000.png", "q00001.png"):
        check_image(tmp_path / "report" / "strips" / name, (4 * 20 + 12 + 6, 82))


def test_evaluate_report(tiny_world, toy_weights, tmp_path):
    out = tmp_path / "report"
    argv = ["evaluate", "--weights", str(toy_weights)]
    argv += ["--dataset", "market1501", "--root", str(tiny_world), "--height", "128"]
    argv += ["--width", "64", "--report", str(out), "--report-queries", "3", "--report-best", "2"]
    assert main(argv) == 0
    strips = sorted((out / "strips").glob("*.png"))
    assert len(strips) == 5  # 3 worst + 2 best of the 32 queries
    for strip in strips:
        check_image(strip, (11 * 64 + 12 + 9 * 3, 128 + 42))
    html = (out / "index.html").read_text()
    assert html.count("<img ") == 5 and "rank1" in html
