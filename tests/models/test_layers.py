import pytest
import torch
from torch import nn

from omnireid.models.layers import AggregationGate, LiteConv3x3, OSBlock, Stream


def _receptive_field(module: nn.Module, channels: int, size: int = 21) -> int:
    """Width of the input region that influences the centre output pixel."""
    module.eval()
    x = torch.randn(1, channels, size, size, requires_grad=True)
    module(x)[0, :, size // 2, size // 2].sum().backward()
    cols = (x.grad.abs().sum(dim=(0, 1, 2)) > 0).nonzero().flatten()
    return int(cols.max() - cols.min() + 1)


def test_lite3x3_is_pointwise_then_depthwise_bn_relu():
    lite = LiteConv3x3(8, 16)
    assert lite.conv1.kernel_size == (1, 1) and lite.conv1.bias is None
    assert lite.conv2.kernel_size == (3, 3) and lite.conv2.groups == 16
    assert isinstance(lite.bn, nn.BatchNorm2d)
    out = lite(torch.randn(2, 8, 5, 5))
    assert out.shape == (2, 16, 5, 5) and out.min() >= 0  # ReLU last


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_stream_receptive_field_is_2t_plus_1(depth):
    # ICCV Sec. 3.2: t stacked Lite 3x3 layers see a (2t+1) x (2t+1) region.
    torch.manual_seed(0)
    assert _receptive_field(Stream(4, depth), 4) == 2 * depth + 1


def test_gate_is_channelwise_input_dependent_and_in_unit_interval():
    torch.manual_seed(0)
    gate = AggregationGate(32)
    assert gate.fc1.out_channels == 2 and gate.fc1.bias is not None  # reduction 16
    a, b = gate(torch.randn(1, 32, 6, 6)), gate(torch.randn(1, 32, 6, 6) * 3)
    assert a.shape == (1, 32, 1, 1)
    assert ((a > 0) & (a < 1)).all()
    assert not torch.allclose(a, b)


def test_unified_gate_is_shared_by_all_streams():
    block = OSBlock(64, 64)
    assert [len(s.layers) for s in block.conv2] == [1, 2, 3, 4]
    gates = [m for m in block.modules() if isinstance(m, AggregationGate)]
    assert len(gates) == 1


def _gate_param_count(block: OSBlock) -> int:
    return sum(p.numel() for n, p in block.named_parameters() if "gate" in n)


def test_fusion_variants_have_the_papers_parameter_structure():
    mid = 16
    unified = OSBlock(64, 64, fusion="unified")
    separate = OSBlock(64, 64, fusion="separate")
    streamwise = OSBlock(64, 64, fusion="streamwise")
    static = OSBlock(64, 64, fusion="static")
    concat = OSBlock(64, 64, fusion="concat")
    add = OSBlock(64, 64, fusion="add")
    # Unified AG: parameters independent of T; separate AGs: T times as many.
    assert _gate_param_count(separate) == 4 * _gate_param_count(unified)
    assert _gate_param_count(OSBlock(64, 64, streams=2)) == _gate_param_count(unified)
    assert streamwise.gate.fc2.out_channels == 1
    assert static.static_gates.shape == (4, mid, 1, 1)
    assert _gate_param_count(add) == 0 and _gate_param_count(concat) == 0
    assert concat.conv3.conv.in_channels == 4 * mid


def test_static_gate_ignores_the_input_while_dynamic_gate_does_not():
    torch.manual_seed(0)
    static = OSBlock(64, 64, fusion="static")
    unified = OSBlock(64, 64)
    xs = [torch.randn(1, 16, 3, 3) for _ in range(4)]
    ys = [x * 5 for x in xs]
    assert all(
        torch.equal(a, b)
        for a, b in zip(static.stream_gates(xs), static.stream_gates(ys), strict=True)
    )
    assert not torch.allclose(unified.stream_gates(xs)[0], unified.stream_gates(ys)[0])


def test_the_t1_baseline_is_fig_4a_without_a_gate():
    """Table 5 model 9: x~ = F(x), one Lite 3x3 stream, no aggregation gate (Eq. 1)."""
    torch.manual_seed(0)
    baseline = OSBlock(64, 64, streams=1, fusion="none")
    assert len(baseline.conv2) == 1 and _gate_param_count(baseline) == 0
    x = torch.randn(2, 64, 6, 6)
    with torch.no_grad():
        expected = torch.relu(baseline.conv3(baseline.conv2[0](baseline.conv1(x))) + x)
        torch.testing.assert_close(baseline(x), expected)
    gated = OSBlock(64, 64, streams=1)  # streams=1 alone keeps a gate: SE-like, not model 9
    assert _gate_param_count(gated) > 0
    with pytest.raises(ValueError, match="needs streams=1"):
        OSBlock(64, 64, streams=4, fusion="none")


@pytest.mark.parametrize("fusion", ["unified", "separate", "streamwise", "static", "concat", "add"])
@pytest.mark.parametrize("streams", [1, 4])
def test_every_fusion_runs_and_every_parameter_gets_a_gradient(fusion, streams):
    torch.manual_seed(0)
    block = OSBlock(32, 64, streams=streams, fusion=fusion)
    block(torch.randn(2, 32, 6, 6)).sum().backward()
    # Connected to the loss (a gate with one hidden unit can have an all-dead ReLU at init).
    no_grad = [n for n, p in block.named_parameters() if p.grad is None]
    assert not no_grad


def test_same_depth_streams_and_full_conv():
    resnext = OSBlock(64, 64, stream_depth=1)
    assert [len(s.layers) for s in resnext.conv2] == [1, 1, 1, 1]
    full = OSBlock(64, 64, lite=False)
    layer = full.conv2[0].layers[0]
    assert layer.conv.kernel_size == (3, 3) and layer.conv.groups == 1


def test_identity_shortcut_only_when_widths_match():
    assert OSBlock(64, 64).downsample is None
    down = OSBlock(32, 64).downsample
    assert down.conv.kernel_size == (1, 1) and isinstance(down.bn, nn.BatchNorm2d)


@pytest.mark.parametrize(
    ("placement", "inside", "after"),
    [("none", False, False), ("in", True, False), ("out", False, True), ("in_out", True, True)],
)
def test_instance_norm_placements(placement, inside, after):
    block = OSBlock(64, 64, instance_norm=placement)
    assert (block.IN is not None) == inside
    assert (block.IN_out is not None) == after
    # TPAMI Fig. 4: with IN inside the residual the last 1x1 conv has no BN.
    assert (block.conv3.bn is None) == inside
    for norm in (block.IN, block.IN_out):
        if norm is not None:
            assert norm.affine and not norm.track_running_stats


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="fusion"):
        OSBlock(64, 64, fusion="max")
    with pytest.raises(ValueError, match="streams"):
        OSBlock(64, 64, streams=0)
    with pytest.raises(ValueError, match="instance_norm"):
        OSBlock(64, 64, instance_norm="everywhere")
    with pytest.raises(ValueError, match="divisible"):
        OSBlock(64, 66)
    with pytest.raises(ValueError, match="reduction"):
        OSBlock(16, 16)
