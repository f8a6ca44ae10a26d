"""The cluster memory's InfoNCE loss and momentum update, worked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from omnireid.adapt.memory import ClusterMemory


def test_infonce_loss_of_a_feature_on_its_centroid():
    memory = ClusterMemory(temperature=0.5, momentum=0.1)
    memory.reset(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    loss = memory(None, torch.tensor([[2.0, 0.0]]), torch.tensor([0]))["contrast"]
    # similarities 1 and 0 over tau 0.5: -log(e^2 / (e^2 + e^0)) = log(1 + e^-2)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), abs=1e-6)


def test_loss_gradient_reaches_the_features_not_the_memory():
    memory = ClusterMemory(temperature=0.05)
    memory.reset(torch.eye(3))
    features = torch.tensor([[0.2, 1.0, 0.1]], requires_grad=True)
    memory(None, features, torch.tensor([0]))["contrast"].backward()
    assert features.grad is not None and features.grad[0, 0] < 0  # pulled towards centroid 0
    assert not memory.centroids.requires_grad


def test_momentum_update_moves_each_centroid_towards_its_members_in_order():
    memory = ClusterMemory(temperature=0.05, momentum=0.1)
    memory.reset(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    memory.update(torch.tensor([[0.0, 3.0], [0.0, -1.0]]), torch.tensor([0, 1]))
    # c0 <- 0.1 (1, 0) + 0.9 (0, 1) = (0.1, 0.9), normalised; c1 <- 0.1 (0,1) + 0.9 (0,-1)
    n = math.hypot(0.1, 0.9)
    assert torch.allclose(memory.centroids[0], torch.tensor([0.1 / n, 0.9 / n]))
    assert torch.allclose(memory.centroids[1], torch.tensor([0.0, -1.0]))
    # two members of one cluster: applied one after the other
    memory.reset(torch.tensor([[1.0, 0.0]]))
    memory.update(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    first = torch.tensor([0.1, 0.9]) / n
    second = 0.1 * first + 0.9 * torch.tensor([0.0, 1.0])
    assert torch.allclose(memory.centroids[0], second / second.norm())


def test_accuracy_is_the_share_nearest_their_own_centroid():
    memory = ClusterMemory()
    memory.reset(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    features = torch.tensor([[1.0, 0.1], [0.9, 0.2], [0.1, 1.0]])
    assert memory.accuracy(None, features, torch.tensor([0, 1, 1]))["acc"] == pytest.approx(2 / 3)


def test_bad_settings_and_an_empty_memory_are_refused():
    with pytest.raises(ValueError, match="temperature"):
        ClusterMemory(temperature=0)
    with pytest.raises(ValueError, match="momentum"):
        ClusterMemory(momentum=1.0)
    with pytest.raises(RuntimeError, match="empty"):
        ClusterMemory()(None, torch.ones(1, 2), torch.tensor([0]))
