"""k-reciprocal re-ranking: hand-checked cases, chunking invariance, and the reference peer."""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from omnireid.evaluation import rerank as rerank_module
from omnireid.evaluation.rerank import rerank


def _sq_euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def _abs_1d(a: list[float], b: list[float]) -> np.ndarray:
    return np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :])


def _random_inputs(
    seed: int, num_query: int = 30, num_gallery: int = 80, dim: int = 16, ties: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((num_query, dim)).astype(np.float32)
    gallery = rng.standard_normal((num_gallery, dim)).astype(np.float32)
    if ties:
        gallery[1::7] = gallery[0::7][: len(gallery[1::7])]  # duplicated gallery features
        query[:5] = gallery[10:15]  # queries identical to gallery samples
    return (
        _sq_euclidean(query, gallery),
        _sq_euclidean(query, query),
        _sq_euclidean(gallery, gallery),
    )


def _normalised_joint(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray) -> np.ndarray:
    """The matrix the algorithm ranks: squared joint distances over column maxima, transposed."""
    joint = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64) ** 2
    return (joint / joint.max(axis=0)).T


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    """torchreid's re-ranking module (the reference peer, a test-only dependency).

    ``torchreid.reid.utils.rerank`` depends on numpy alone, so it is loaded on its own: importing
    the ``torchreid`` package would pull in its models and data code and take seconds.
    """
    reason = "reference peer torchreid==0.2.5 not installed (pip install -e '.[reference]')"
    spec = importlib.util.find_spec("torchreid")
    if spec is None or spec.origin is None:
        pytest.skip(reason)
    path = Path(spec.origin).parent / "reid" / "utils" / "rerank.py"
    if not path.is_file():  # unusual layout: fall back to a regular import
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchreid warns about its missing Cython extension
            return pytest.importorskip("torchreid.reid.utils.rerank", reason=reason)
    module_spec = importlib.util.spec_from_file_location("_reference_rerank", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture
def small_blocks(monkeypatch):
    """Force many small blocks so chunk boundaries (and the query/gallery seam) are crossed."""
    monkeypatch.setattr(rerank_module, "_RANK_BLOCK", 7)
    monkeypatch.setattr(rerank_module, "_EXPAND_BLOCK", 13)
    monkeypatch.setattr(rerank_module, "_PAIR_BUDGET", 300)


# ---------------------------------------------------------------------------------------------
# Hand-checked behaviour


def test_hand_computed_tiny_case():
    # 1-d points: query 0; gallery a=1, b=10, c=11. With k1=1 every sample's k-reciprocal set is
    # itself plus its mutual nearest neighbour: {q, a} and {b, c}; k2=1 disables expansion.
    q_g, q_q, g_g = _abs_1d([0], [1, 10, 11]), _abs_1d([0], [0]), _abs_1d([1, 10, 11], [1, 10, 11])
    out = rerank(q_g, q_q, g_g, k1=1, k2=1, lambda_value=0.3)

    # column maxima of the squared joint matrix: q -> 11^2, a -> 10^2
    e_q, e_a = math.exp(-1 / 121), math.exp(-1 / 100)
    v_q = {"q": 1 / (1 + e_q), "a": e_q / (1 + e_q)}
    v_a = {"a": 1 / (1 + e_a), "q": e_a / (1 + e_a)}
    inter = min(v_q["q"], v_a["q"]) + min(v_q["a"], v_a["a"])
    jaccard = 1 - inter / (2 - inter)
    expected = [0.7 * jaccard + 0.3 * 1 / 121, 0.7 + 0.3 * 100 / 121, 0.7 + 0.3 * 121 / 121]
    np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-6)


def test_reciprocal_neighbourhood_changes_the_order():
    # Gallery: t1, t2 lie on the query's side; f0..f3 form a tight cluster on the other side.
    # f0 is closer to the query than t2, but the query is not among f0's nearest neighbours,
    # whereas t2 shares the reciprocal neighbour t1 with it: re-ranking puts t2 before f0.
    gallery = [-1.0, -1.7, 1.5, 1.55, 1.6, 1.65]
    q_g, q_q, g_g = _abs_1d([0], gallery), _abs_1d([0], [0]), _abs_1d(gallery, gallery)
    assert np.argsort(q_g[0]).tolist() == [0, 2, 3, 4, 5, 1]
    out = rerank(q_g, q_q, g_g, k1=2, k2=1, lambda_value=0.3)
    assert np.argsort(out[0]).tolist() == [0, 1, 2, 3, 4, 5]


def test_lambda_one_returns_normalised_original_distance():
    q_g, q_q, g_g = _random_inputs(0)
    out = rerank(q_g, q_q, g_g, lambda_value=1.0)
    expected = _normalised_joint(q_g, q_q, g_g)[: len(q_g), len(q_g) :]
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


def test_lambda_zero_disjoint_clusters_have_jaccard_distance_one():
    rng = np.random.default_rng(1)
    gallery = np.concatenate([rng.normal(0, 0.1, (10, 4)), rng.normal(50, 0.1, (10, 4))])
    query = rng.normal(0, 0.1, (3, 4))
    out = rerank(
        _sq_euclidean(query, gallery),
        _sq_euclidean(query, query),
        _sq_euclidean(gallery, gallery),
        k1=5,
        k2=3,
        lambda_value=0.0,
    )
    np.testing.assert_array_equal(out[:, 10:], 1.0)  # no shared neighbours at all
    assert (out[:, :10] < 1).all() and (out[:, :10] >= 0).all()


def test_duplicated_features_sanity():
    q_g, q_q, g_g = _random_inputs(2, ties=True)
    out = rerank(q_g, q_q, g_g)
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1 + 1e-6).all()
    # queries 0..4 are copies of gallery samples: their best match is at distance zero
    best = out[:5].argmin(axis=1)
    np.testing.assert_array_equal(q_g[np.arange(5), best], 0.0)


# ---------------------------------------------------------------------------------------------
# Interface


@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype(as_tensor, dtype):
    q_g, q_q, g_g = (m.astype(dtype) for m in _random_inputs(3, num_query=7, num_gallery=11))
    if as_tensor:
        q_g, q_q, g_g = map(torch.from_numpy, (q_g, q_q, g_g))
    out = rerank(q_g, q_q, g_g, k1=4, k2=2)
    assert isinstance(out, np.ndarray) and out.shape == (7, 11) and out.dtype == np.float32


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (((3, 5), (3, 4), (5, 5)), {}, "q_q_dist must have shape"),
        (((3, 5), (3, 3), (4, 4)), {}, "g_g_dist must have shape"),
        (((3, 5), (5, 5), (3, 3)), {}, "q_q_dist must have shape"),
        (((15,), (3, 3), (5, 5)), {}, "must be a 2-D matrix"),
        (((0, 5), (0, 0), (5, 5)), {}, "at least one query"),
        (((3, 5), (3, 3), (5, 5)), {"k1": 0}, "k1 must be"),
        (((3, 5), (3, 3), (5, 5)), {"k2": 0}, "k2 must be"),
        (((3, 5), (3, 3), (5, 5)), {"k1": 2.5}, "k1 must be"),
        (((3, 5), (3, 3), (5, 5)), {"lambda_value": 1.5}, "lambda_value must lie"),
    ],
)
def test_invalid_inputs_raise(args, kwargs, match):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        rerank(*(rng.random(shape) for shape in args), **kwargs)


def test_non_finite_input_raises():
    q_g, q_q, g_g = _random_inputs(4, num_query=3, num_gallery=5)
    q_g[0, 0] = np.nan
    with pytest.raises(ValueError, match="must be finite"):
        rerank(q_g, q_q, g_g)
    q_g[0, 0] = 1.0
    g_g[4, 2] = np.inf
    with pytest.raises(ValueError, match="must be finite"):
        rerank(q_g, q_q, g_g)


def test_all_zero_distances_raise():
    zeros = np.zeros
    with pytest.raises(ValueError, match="zero distance to every other"):
        rerank(zeros((2, 3)), zeros((2, 2)), zeros((3, 3)))


def test_result_independent_of_block_sizes(monkeypatch):
    q_g, q_q, g_g = _random_inputs(5)
    expected = rerank(q_g, q_q, g_g)
    monkeypatch.setattr(rerank_module, "_RANK_BLOCK", 7)
    monkeypatch.setattr(rerank_module, "_EXPAND_BLOCK", 13)
    monkeypatch.setattr(rerank_module, "_PAIR_BUDGET", 300)
    np.testing.assert_array_equal(rerank(q_g, q_q, g_g), expected)


# ---------------------------------------------------------------------------------------------
# Agreement with the reference implementation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_without_ties(reference, small_blocks, seed):
    q_g, q_q, g_g = _random_inputs(seed)
    ranked = _normalised_joint(q_g, q_q, g_g)
    sorted_rows = np.sort(ranked, axis=1)
    assert (np.diff(sorted_rows, axis=1) > 0).all(), "inputs must be tie-free for this test"
    expected = reference.re_ranking(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3)
    out = rerank(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("k1", "k2", "lambda_value"), [(5, 3, 0.0), (3, 1, 0.5), (7, 10, 0.2), (1, 1, 0.3)]
)
def test_matches_reference_other_parameters(reference, k1, k2, lambda_value):
    q_g, q_q, g_g = _random_inputs(6, num_query=12, num_gallery=40, dim=8)
    expected = reference.re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    out = rerank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_matches_reference_on_asymmetric_float64_inputs(reference):
    # Not distances at all, but the arithmetic is defined for any matrices: checks the
    # column-max normalisation and the transpose are taken the same way round.
    rng = np.random.default_rng(7)
    q_g, q_q, g_g = rng.random((10, 25)), rng.random((10, 10)), rng.random((25, 25))
    expected = reference.re_ranking(q_g, q_q, g_g, k1=6, k2=3, lambda_value=0.3)
    np.testing.assert_allclose(rerank(q_g, q_q, g_g, k1=6, k2=3), expected, rtol=0, atol=1e-5)


class _StableArgsortNumpy:
    """numpy, except that ``argsort`` is stable: ties then rank by index, as ``rerank`` does."""

    def __getattr__(self, name: str):
        return getattr(np, name)

    @staticmethod
    def argsort(a, *args, **kwargs):
        return np.argsort(a, kind="stable")


def test_matches_reference_with_ties_when_its_sort_is_stable(reference, monkeypatch):
    # The reference's default argsort orders tied distances arbitrarily and its result depends
    # on that order; with a stable sort it must agree with ours exactly, ties included.
    q_g, q_q, g_g = _random_inputs(8, ties=True)
    monkeypatch.setattr(reference, "np", _StableArgsortNumpy())
    expected = reference.re_ranking(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3)
    np.testing.assert_allclose(rerank(q_g, q_q, g_g), expected, rtol=0, atol=1e-5)


def _dense_jaccard(d: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Zhong et al.'s steps written out densely for one set (the test's own, slow version)."""
    n = len(d)
    sq = d.astype(np.float64) ** 2
    m = (sq / sq.max(axis=0)).T.astype(np.float32)  # row i: column i scaled by its maximum
    ranks = np.argsort(m, axis=1, kind="stable")

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = ranks[i, : k + 1]
        return np.array([c for c in forward if i in ranks[c, : k + 1]])

    v = np.zeros((n, n))
    for i in range(n):
        own = set(reciprocal(i, k1).tolist())
        members = set(own)
        for c in own:  # expansion: judged against the sample's own reciprocal set
            cand = reciprocal(c, int(np.around(k1 / 2)))
            if len(set(cand.tolist()) & own) > 2 / 3 * len(cand):
                members |= set(cand.tolist())
        idx = np.array(sorted(members))
        w = np.exp(-m[i, idx].astype(np.float64))
        v[i, idx] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[ranks[i, :k2]].mean(axis=0) for i in range(n)])
    out = np.array(
        [
            [1 - np.minimum(v[i], v[j]).sum() / np.maximum(v[i], v[j]).sum() for j in range(n)]
            for i in range(n)
        ]
    )
    np.fill_diagonal(out, 0)
    return out


def test_jaccard_distance_of_one_set_matches_the_steps_written_out():
    from omnireid.evaluation.rerank import jaccard_distance

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 8))
    x = np.repeat(centres, 10, axis=0) + 0.3 * rng.standard_normal((40, 8))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    got = jaccard_distance(d, k1=8, k2=3)
    np.testing.assert_allclose(got, _dense_jaccard(d, 8, 3), atol=2e-5)
    same = np.repeat(np.arange(4), 10)
    within = got[same[:, None] == same[None]]
    across = got[same[:, None] != same[None]]
    assert within.mean() < 0.8 and np.allclose(across, 1.0)  # no shared neighbours across
