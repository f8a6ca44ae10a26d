"""AdaBN: BatchNorm running statistics become the target batches' average statistics."""

from __future__ import annotations

import torch
from torch import nn

from omnireid.adapt.adabn import adapt_batchnorm
from omnireid.models import build


def test_running_statistics_become_the_mean_of_the_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    conv_weight = model[0].weight.detach().clone()
    bn_weight = model[1].weight.detach().clone()
    batches = [torch.randn(8, 3, 5, 5) * s + m for s, m in ((1.0, 0.0), (2.0, 3.0))]
    seen = adapt_batchnorm(model, iter(batches))
    assert seen == 16
    with torch.no_grad():
        outs = [model[0](b) for b in batches]
    means = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    variances = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs]).mean(0)
    bn = model[1]
    assert torch.allclose(bn.running_mean, means, atol=1e-5)
    assert torch.allclose(bn.running_var, variances, atol=1e-4)
    # learned weights untouched, momentum restored, eval mode
    assert torch.equal(model[0].weight, conv_weight) and torch.equal(bn.weight, bn_weight)
    assert bn.momentum == 0.1 and not model.training


def test_osnet_features_change_only_through_the_statistics():
    torch.manual_seed(0)
    model = build("osnet_x0_25", num_classes=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(16, 3, 64, 32) * 0.5 + 0.5  # a "brighter site"
    adapt_batchnorm(model, [images[:8], images[8:]])
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    assert changed and all(k.endswith(statistics) for k in changed)
    # in eval mode the features of these images are now normalised by their own statistics:
    # the first BatchNorm's output has mean ~0 per channel over the target images
    bn = model.conv1.bn
    with torch.no_grad():
        first = bn(model.conv1.conv(images))
    assert first.mean((0, 2, 3)).abs().max() < 0.05


def test_instance_norm_models_are_adapted_in_their_batch_norms_only():
    torch.manual_seed(0)
    model = build("osnet_ain_x0_25", num_classes=4).eval()
    instance_norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert instance_norms and all(not m.track_running_stats for m in instance_norms)
    x = torch.rand(4, 3, 64, 32)
    with torch.no_grad():
        before = model(x)
        adapt_batchnorm(model, [torch.rand(8, 3, 64, 32) * 0.3])
        assert not torch.allclose(before, model(x))  # its BatchNorms did change
