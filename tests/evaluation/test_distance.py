import pytest
import torch

from omnireid.evaluation.distance import compute_distance_matrix


def test_squared_euclidean_hand_computed():
    q = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    g = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    d = compute_distance_matrix(q, g)
    assert d.tolist() == [[25.0, 1.0], [13.0, 1.0]]


def test_cosine_and_normalisation():
    q = torch.tensor([[2.0, 0.0]])
    g = torch.tensor([[5.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    assert compute_distance_matrix(q, g, "cosine").tolist() == [[0.0, 1.0, 2.0]]
    # On unit vectors squared Euclidean = 2 - 2 cos.
    d = compute_distance_matrix(q, g, "euclidean", normalize=True)
    assert torch.allclose(d, torch.tensor([[0.0, 2.0, 4.0]]))


def test_chunked_equals_unchunked():
    torch.manual_seed(0)
    q, g = torch.randn(37, 16), torch.randn(50, 16)
    full = torch.cdist(q, g).pow(2)
    assert torch.allclose(compute_distance_matrix(q, g, chunk_size=5), full, atol=1e-4)


def test_bad_shapes_and_metric():
    with pytest.raises(ValueError, match="features must be"):
        compute_distance_matrix(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="unknown metric"):
        compute_distance_matrix(torch.zeros(2, 3), torch.zeros(2, 3), "manhattan")
