import warnings

import numpy as np
import pytest
import torch

from omnireid.evaluation.metrics import (
    RANK_KEYS,
    as_numpy,
    average_results,
    evaluate_rank,
    evaluate_single_gallery_shot,
    query_scores,
)


def test_hand_computed_single_query():
    # Gallery sorted by distance: g0 (id 1, cam 1), g1 (id 2), g2 (id 1, cam 0 = query camera,
    # removed), g3 (id 1, cam 2), g4 (id 3). Kept ranking: id1, id2, id1, id3.
    # Matches at ranks 1 and 3: AP = (1/1 + 2/3) / 2; INP = 2 / 3; rank-1 hit.
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    r = evaluate_rank(dist, [1], [1, 2, 1, 1, 3], [0], [1, 1, 0, 2, 1], max_rank=4)
    assert r.mAP == pytest.approx((1 + 2 / 3) / 2)
    assert r.mINP == pytest.approx(2 / 3)
    assert r.cmc.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_first_match_at_rank_three_and_skipped_queries():
    dist = np.array([[0.1, 0.2, 0.3, 0.9], [0.5, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]])
    q_pids, q_cams = [5, 7, 9], [0, 0, 0]
    g_pids, g_cams = [1, 2, 5, 5], [1, 1, 1, 0]
    # query 0: kept ranking 1, 2, 5 -> first match at rank 3, AP 1/3. query 1 (id 7) has no
    # match and query 2 (id 9) neither: both skipped.
    r = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=3)
    assert (r.num_valid_queries, r.num_skipped_queries) == (1, 2)
    assert r.cmc.tolist() == [0.0, 0.0, 1.0]
    assert r.mAP == pytest.approx(1 / 3)
    assert r.as_dict()["rank1"] == 0.0


def test_per_query_scores_of_the_hand_computed_queries():
    # query 0 as in test_hand_computed_single_query (AP (1 + 2/3) / 2, first match at 1); query
    # 1 (id 2): its only match g1 is at rank 2, AP 1/2; query 2 (id 4) has no match: not valid
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]] * 3)
    g_pids, g_cams = [1, 2, 1, 1, 3], [1, 1, 0, 2, 1]
    s = query_scores(dist, [1, 2, 4], g_pids, [0, 0, 0], g_cams, chunk_size=2)
    assert s.valid.tolist() == [True, True, False]
    assert s.ap == pytest.approx([(1 + 2 / 3) / 2, 1 / 2])
    assert s.inp == pytest.approx([2 / 3, 1 / 2]) and s.first_rank.tolist() == [1, 2]
    r = evaluate_rank(dist, [1, 2, 4], g_pids, [0, 0, 0], g_cams)
    assert r.mAP == pytest.approx(s.ap.mean()) and r.cmc[0] == 0.5


def test_no_valid_query_is_an_error():
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate_rank(np.zeros((1, 2)), [1], [1, 2], [0], [0, 0])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="distmat is 2x3"):
        evaluate_rank(np.zeros((2, 3)), [1], [1, 2, 3], [0, 0], [0, 0, 0])


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(1)
    d = rng.random((50, 70))
    args = (
        rng.integers(0, 8, 50),
        rng.integers(0, 8, 70),
        rng.integers(0, 3, 50),
        rng.integers(0, 3, 70),
    )
    a, b = evaluate_rank(d, *args, chunk_size=7), evaluate_rank(d, *args, chunk_size=1000)
    assert np.array_equal(a.cmc, b.cmc) and a.mAP == pytest.approx(b.mAP)


def _random_problem(seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    n, m = 60, 400
    d = rng.integers(0, 25, size=(n, m)).astype(np.float32) if ties else rng.random((n, m))
    return (
        d.astype(np.float32),
        rng.integers(0, 30, n),  # some query ids absent from the gallery
        rng.integers(0, 25, m),
        rng.integers(0, 3, n),
        rng.integers(0, 3, m),
    )


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_the_reference_evaluate_rank(seed, ties):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rank = pytest.importorskip(
            "torchreid.reid.metrics.rank", reason="needs the reference extra"
        )
    problem = _random_problem(seed, ties)
    ref_cmc, ref_map = rank.evaluate_rank(*problem, max_rank=50, use_cython=False)
    ours = evaluate_rank(*problem, max_rank=50)
    assert ours.num_skipped_queries > 0  # the problem really has queries without matches
    np.testing.assert_allclose(ours.cmc, ref_cmc, atol=1e-6)
    assert ours.mAP == pytest.approx(ref_map, abs=1e-6)


def test_single_gallery_shot_is_seeded_and_one_image_per_identity():
    # Query id 1; gallery: two images of id 1 (one close, one far) and one of id 2 between.
    dist = np.array([[0.1, 0.5, 0.9]])
    g_pids, g_cams = [1, 2, 1], [1, 1, 1]
    a = evaluate_single_gallery_shot(dist, [1], g_pids, [0], g_cams, max_rank=2, repeats=50, seed=3)
    b = evaluate_single_gallery_shot(dist, [1], g_pids, [0], g_cams, max_rank=2, repeats=50, seed=3)
    assert np.array_equal(a.cmc, b.cmc)
    # Rank-1 holds when the close id-1 image is drawn (about half of the draws); rank-2 always.
    assert 0.2 < a.cmc[0] < 0.8 and a.cmc[1] == 1.0


def test_average_over_splits():
    d = np.array([[0.1, 0.2]])
    hit = evaluate_rank(d, [1], [1, 2], [0], [1, 1], max_rank=2)
    miss = evaluate_rank(d, [1], [2, 1], [0], [1, 1], max_rank=2)
    avg = average_results([hit, miss])
    assert avg.cmc.tolist() == [0.5, 1.0]
    assert avg.mAP == pytest.approx((1 + 0.5) / 2)


def test_the_rank_keys_are_what_as_dict_reports():
    # one query, 12 gallery images, its only true match (id 1, another camera) at rank 7:
    # rank-1 and rank-5 miss (0%), rank-10 hits (100%); AP = INP = 1/7
    dist = np.arange(12, dtype=float)[None] / 12
    g_pids = [2, 3, 4, 5, 6, 7, 1, 8, 9, 10, 11, 12]
    r = evaluate_rank(dist, [1], g_pids, [0], [1] * 12, max_rank=12)
    assert RANK_KEYS == ("rank1", "rank5", "rank10", "mAP", "mINP")
    assert r.as_dict() == pytest.approx(
        {"rank1": 0.0, "rank5": 0.0, "rank10": 100.0, "mAP": 100 / 7, "mINP": 100 / 7}
    )
    # a gallery of three: no rank-5 or rank-10 to report
    short = evaluate_rank(dist[:, :3], [2], [2, 3, 4], [0], [1, 1, 1], max_rank=3)
    assert list(short.as_dict()) == ["rank1", "mAP", "mINP"]


def test_as_numpy_takes_tensors_arrays_and_lists():
    assert as_numpy(torch.tensor([1, 2], requires_grad=False)).tolist() == [1, 2]
    assert as_numpy(torch.ones(2, requires_grad=True)).tolist() == [1.0, 1.0]
    assert as_numpy([3, 4]).tolist() == [3, 4]
