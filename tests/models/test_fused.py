import pytest
import torch
from torch import nn

from omnireid.errors import CheckpointError
from omnireid.models import list_models
from omnireid.models.fused import FastOSBlock, optimize_for_inference
from tests.deploy.helpers import trained_like


def _assert_same_features(model: nn.Module, level_streams: bool = False) -> None:
    fast = optimize_for_inference(model, level_streams=level_streams)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        expected, got = model(x), fast(x)
    assert expected.abs().max() > 1e-2
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_gives_the_same_features(arch):
    _assert_same_features(trained_like(arch))


@pytest.mark.parametrize(
    "options",
    [
        {"lite": False},
        {"stream_depth": 1},
        {"fusion": "separate"},
        {"fusion": "streamwise"},
        {"fusion": "static"},
        {"fusion": "concat"},
        {"fusion": "add"},
        {"streams": 1, "fusion": "none"},
        {"streams": 2},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_ablations_give_the_same_features(options):
    _assert_same_features(trained_like("osnet_x0_25", **options))


@pytest.mark.parametrize("arch", ["osnet_x0_25", "osnet_ain_x0_25"])
def test_levelled_streams_give_the_same_features(arch):
    _assert_same_features(trained_like(arch), level_streams=True)


def test_streams_are_levelled_only_when_exact():
    fast = optimize_for_inference(trained_like("osnet_x0_25"), level_streams=True)
    blocks = [m for m in fast.modules() if isinstance(m, FastOSBlock)]
    assert blocks and all(b.levelled for b in blocks)
    assert len(blocks[0].levels) == 4 and blocks[0].levels[1][0].groups == 3
    resnext = optimize_for_inference(
        trained_like("osnet_x0_25", stream_depth=1), level_streams=True
    )
    assert not any(m.levelled for m in resnext.modules() if isinstance(m, FastOSBlock))


def test_no_batchnorm_left_and_the_model_is_untouched():
    model = trained_like("osnet_x0_25")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in fast.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_bnneck_model_folds_to_the_same_features():
    model = trained_like("osnet_x0_25", bnneck=True)
    model.bnneck.running_mean.normal_(0, 0.1)
    model.bnneck.running_var.uniform_(0.5, 1.5)
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(optimize_for_inference(model)(x), model(x), atol=1e-4, rtol=0)


def test_folding_a_bn_without_scale_and_shift():
    from omnireid.models.fused import fold_bn

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 1, bias=False)
    bn = torch.nn.BatchNorm2d(4, affine=False).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    w, b = fold_bn(conv.weight, None, bn)
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(torch.nn.functional.conv2d(x, w, b), bn(conv(x)))


@pytest.mark.parametrize(
    "damage, folded", [("nan weight", "1 tensor(s)"), ("negative running_var", "2 tensor(s)")]
)
def test_weights_that_fold_to_nan_are_refused(damage, folded):
    """The plain model gives NaN features; the fused ReLUs of the fast one would give zeros in
    the damaged channel and features that look fine, so folding refuses. A NaN conv weight
    damages that conv's folded weight; a negative variance its folded weight and bias."""
    model = trained_like("osnet_x0_25")
    with torch.no_grad():
        if damage == "nan weight":
            model.conv2[0].conv1.conv.weight[3, 0, 0, 0] = float("nan")
        else:
            model.conv2[0].conv1.bn.running_var[3] = -0.5
        x = torch.randn(2, 3, 64, 32)
        assert not model(x).isfinite().all()  # what the plain model does
    with pytest.raises(CheckpointError) as refused:
        optimize_for_inference(model)
    assert f"osnet_x0_25: {folded} are NaN or infinite once the BatchNorms are folded" in str(
        refused.value
    )
    assert "e.g. conv2.0.conv1.conv.weight" in str(refused.value)
