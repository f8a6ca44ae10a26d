import pytest
import torch
from torch import nn

from omnireid.engine.optim import (
    build_optimizer,
    build_scheduler,
    lr_factor,
    open_all,
    open_layers,
)
from omnireid.models import build


def _lrs(name, lr, epochs, **schedule):
    """Learning rate used in each of epochs 0..epochs-1 (the scheduler steps after each)."""
    optimizer = build_optimizer([nn.Parameter(torch.zeros(2))], "sgd", lr)
    scheduler = build_scheduler(optimizer, name, **schedule)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_sgd_settings():
    model = nn.Linear(3, 2)
    opt = build_optimizer(model, "sgd", 0.065)
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert group["lr"] == 0.065 and group["momentum"] == 0.9 and group["weight_decay"] == 5e-4
    assert group["dampening"] == 0 and group["nesterov"] is False
    assert len(group["params"]) == 2


def test_adam_and_amsgrad():
    model = nn.Linear(3, 2)
    adam = build_optimizer(model, "adam", 3e-4, weight_decay=0.0)
    ams = build_optimizer(model.parameters(), "amsgrad", 0.0015)
    assert isinstance(adam, torch.optim.Adam) and isinstance(ams, torch.optim.Adam)
    assert adam.param_groups[0]["amsgrad"] is False and ams.param_groups[0]["amsgrad"] is True
    assert ams.param_groups[0]["weight_decay"] == 5e-4
    assert ams.param_groups[0]["betas"] == (0.9, 0.999)


def test_no_decay_bias_norm_groups():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    opt = build_optimizer(model, "sgd", 0.1, no_decay_bias_norm=True)
    decay, no_decay = opt.param_groups
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3, 3, 3])]
    assert len(no_decay["params"]) == 3  # conv bias, BN weight, BN bias
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0


def test_sgd_step_hand_computed():
    # One step from w = 1 with grad 1: w - lr (g + wd w) = 1 - 0.1 * (1 + 0.5) = 0.85.
    w = nn.Parameter(torch.ones(1))
    opt = build_optimizer([w], "sgd", 0.1, weight_decay=0.5)
    w.grad = torch.ones(1)
    opt.step()
    assert w.item() == pytest.approx(0.85)


@pytest.mark.parametrize("model", [nn.Linear(3, 2), nn.Conv2d(3, 4, 3)])
def test_cpu_optimizers_take_the_fused_path(model):
    for name in ("sgd", "adam", "amsgrad"):
        assert build_optimizer(model, name, 0.1).defaults["fused"] is True


def test_amsgrad_steps_follow_the_update_rule():
    # AMSGrad (Reddi et al. 2018) with torch's bias correction and L2 weight decay, by hand:
    # g += wd w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; vmax = max(vmax, v);
    # w -= lr (m / (1 - b1^t)) / (sqrt(vmax / (1 - b2^t)) + eps)
    lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
    w = nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = build_optimizer([w], "amsgrad", lr, weight_decay=wd)
    expected, m, v, vmax = w.detach().clone(), torch.zeros(2), torch.zeros(2), torch.zeros(2)
    for t, grad in enumerate([torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.5])], start=1):
        w.grad = grad.clone()
        opt.step()
        g = grad + wd * expected
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = torch.maximum(vmax, v)
        expected = expected - lr * (m / (1 - b1**t)) / ((vmax / (1 - b2**t)).sqrt() + eps)
        torch.testing.assert_close(w.detach(), expected, rtol=1e-6, atol=1e-7)


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(nn.Linear(2, 2), "rmsprop", 0.1)
    with pytest.raises(ValueError, match="no parameters"):
        build_optimizer([], "sgd", 0.1)


def test_from_scratch_recipe():
    lrs = _lrs("multistep", 0.065, 350, max_epoch=350, milestones=(150, 225, 300))
    assert lrs[0] == pytest.approx(0.065)
    assert lrs[149] == pytest.approx(0.065)
    assert lrs[150] == pytest.approx(0.0065)
    assert lrs[224] == pytest.approx(0.0065)
    assert lrs[225] == pytest.approx(0.00065)
    assert lrs[300] == pytest.approx(0.000065)
    assert lrs[349] == pytest.approx(0.000065)


def test_fine_tune_recipe():
    lrs = _lrs("multistep", 0.0015, 150, max_epoch=150, milestones=(60, 120))
    assert [lrs[e] for e in (0, 59, 60, 119, 120, 149)] == pytest.approx(
        [0.0015, 0.0015, 0.00015, 0.00015, 0.000015, 0.000015]
    )


def test_cosine():
    lrs = _lrs("cosine", 0.1, 101, max_epoch=100)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.05)
    assert lrs[25] == pytest.approx(0.05 * (1 + 2**-0.5))
    assert lrs[100] == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(120, "cosine", max_epoch=100) == 0.0  # no restart past the end


def test_warmup():
    # Factor 0.01 + 0.99 * e / 10 over epochs 0..9, then the multistep schedule.
    lrs = _lrs(
        "multistep", 0.1, 21, max_epoch=30, milestones=(20,), warmup_epochs=10, warmup_factor=0.01
    )
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[5] == pytest.approx(0.1 * (0.01 + 0.99 * 0.5))
    assert lrs[9] == pytest.approx(0.1 * (0.01 + 0.99 * 0.9))
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[20] == pytest.approx(0.01)
    # Warm-up multiplies the cosine factor too.
    assert lr_factor(2, "cosine", max_epoch=4, warmup_epochs=4, warmup_factor=0.5) == (
        pytest.approx(0.5 * 0.75)
    )


def test_bad_scheduler_arguments():
    opt = build_optimizer(nn.Linear(2, 2), "sgd", 0.1)
    with pytest.raises(ValueError, match="unknown scheduler"):
        build_scheduler(opt, "poly", max_epoch=10)
    with pytest.raises(ValueError, match="milestones"):
        build_scheduler(opt, "multistep", max_epoch=10, milestones=(8, 4))
    with pytest.raises(ValueError, match="milestones"):
        build_scheduler(opt, "multistep", max_epoch=10, milestones=(10,))
    with pytest.raises(ValueError, match="warmup"):
        build_scheduler(opt, "cosine", max_epoch=10, warmup_epochs=2, warmup_factor=0.0)


@pytest.fixture
def tiny_osnet():
    torch.manual_seed(0)
    return build("osnet_x0_25", num_classes=5)


def test_open_layers_freezes_base(tiny_osnet):
    model = tiny_osnet
    open_layers(model, ["classifier"])
    assert model.training and model.classifier.training
    assert not model.conv1.training and not model.fc[1].training
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    assert before  # the base has BatchNorm statistics to protect

    logits = model(torch.randn(4, 3, 64, 32))
    assert logits.shape == (4, 5)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()

    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    for name, p in model.named_parameters():
        if name.startswith("classifier."):
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0
        else:
            assert not p.requires_grad and p.grad is None, name


def test_open_all_restores(tiny_osnet):
    model = tiny_osnet
    open_layers(model, ["fc", "classifier"])
    assert model.fc.training and not model.conv5.training
    open_all(model)
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    running = model.fc[1].running_mean.clone()
    model(torch.randn(4, 3, 64, 32))
    assert not torch.equal(running, model.fc[1].running_mean)  # BN statistics move again


def test_open_layers_unknown_name(tiny_osnet):
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['head'\].*'classifier'"):
        open_layers(tiny_osnet, ["head"])
    with pytest.raises(TypeError, match="sequence"):
        open_layers(tiny_osnet, "classifier")
