"""A fast, eval-only rewrite of a trained OSNet with the same features (fp32, within 1e-4).

What it changes, each exact up to float rounding:
- every BatchNorm is folded into the convolution or linear layer before it;
- convolutions followed by a ReLU run as one oneDNN call with the ReLU fused (CPU, no grad);
  other ReLUs, the gated sum and the residual addition work in place (fewer large
  allocations, which on CPU cost page faults);
- the aggregation gate runs once for all streams (one batched MLP);
- tensors are kept channels_last, the layout CPU convolution kernels prefer;
- optionally (``level_streams=True``), streams of depths 1..T run level by level: the T first
  Lite layers share their input, so their 1x1 convs become one conv with T times the outputs,
  and at depth j the streams still running are one grouped 1x1 conv and one depthwise conv.
  Off by default: on a 2-core AVX2 CPU the grouped convolutions and channel slices made it
  slower (``benchmarks/fast_inference.py``).
Instance norms (OSNet-IBN/AIN) have no running statistics and are kept as they are.
"""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from omnireid.errors import CheckpointError
from omnireid.models.layers import AggregationGate, ConvNormAct, LiteConv3x3, OSBlock, Stream
from omnireid.models.mutual import MutualPair
from omnireid.models.osnet import OSNet
from omnireid.models.spec import ModelSpec

# torch types a Conv2d's kernel_size, stride and padding as tuples of any length; a Conv2d's
# are pairs (or a padding mode string)
_Pair = tuple[int, int]

_FUSED_CONV = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``relu(conv(x))``, as one oneDNN call with a fused ReLU on CPU where torch has it."""
    if _FUSED_CONV is not None and x.device.type == "cpu" and not torch.is_grad_enabled():
        c = conv
        return _FUSED_CONV(
            x, c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups, "relu", [], ""
        )
    return conv(x).relu_()


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d | nn.BatchNorm1d):
    """Weights and bias of ``bn(layer(x))`` as one layer (``weight`` has out-channels first);
    a BN without scale and shift (``affine=False``) counts as scale 1, shift 0."""
    # the BNs of an OSNet track running statistics (None only with track_running_stats=False)
    assert bn.running_var is not None and bn.running_mean is not None
    scale = 1.0 / torch.sqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = bn.weight * scale
    shape = (-1,) + (1,) * (weight.dim() - 1)
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    shift = (b - bn.running_mean) * scale
    return weight * scale.reshape(shape), shift if bn.bias is None else shift + bn.bias


class FoldedConv(nn.Module):
    """``ConvNormAct`` with its BatchNorm folded in (instance norms stay)."""

    def __init__(self, layer: ConvNormAct) -> None:
        super().__init__()
        conv = layer.conv
        self.conv = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            cast(_Pair, conv.kernel_size),
            cast(_Pair, conv.stride),
            cast("_Pair | str", conv.padding),
            groups=conv.groups,
            bias=True,
        )
        self.norm: nn.Module | None = None
        if isinstance(layer.bn, nn.BatchNorm2d):
            w, b = fold_bn(conv.weight, None, layer.bn)
        else:
            w, b = conv.weight, torch.zeros(conv.out_channels)
            self.norm = layer.bn  # InstanceNorm2d or None
        assert self.conv.bias is not None  # built with bias=True
        self.conv.weight.data.copy_(w)
        self.conv.bias.data.copy_(b)
        self.act = layer.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act and self.norm is None:
            return conv_relu(self.conv, x)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x.relu_() if self.act else x


def _level(lites: list[LiteConv3x3]) -> tuple[nn.Conv2d, nn.Conv2d]:
    """The Lite layers at one depth of several streams -> grouped 1x1 conv + depthwise conv."""
    c_in = lites[0].conv1.in_channels
    c = lites[0].conv1.out_channels
    k = len(lites)
    pw = nn.Conv2d(k * c_in, k * c, 1, groups=k, bias=False)
    dw = nn.Conv2d(k * c, k * c, 3, padding=1, groups=k * c, bias=True)
    pw.weight.data.copy_(torch.cat([lite.conv1.weight for lite in lites]))
    folded = [fold_bn(lite.conv2.weight, None, lite.bn) for lite in lites]
    assert dw.bias is not None  # built with bias=True
    dw.weight.data.copy_(torch.cat([w for w, _ in folded]))
    dw.bias.data.copy_(torch.cat([b for _, b in folded]))
    return pw, dw


class FastOSBlock(nn.Module):
    """An ``OSBlock`` with folded BN and level-by-level streams (see the module docstring)."""

    def __init__(self, block: OSBlock, level_streams: bool = False) -> None:
        super().__init__()
        streams = [cast(Stream, s) for s in block.conv2]
        depths = [len(s.layers) for s in streams]
        lite = all(isinstance(layer, LiteConv3x3) for s in streams for layer in s.layers)
        incremental = depths == list(range(1, len(depths) + 1))
        self.levelled = level_streams and lite and incremental
        self.mid = block.conv1.conv.out_channels
        self.num_streams = len(depths)
        self.conv1 = FoldedConv(block.conv1)
        if self.levelled:
            first_in = cast(LiteConv3x3, streams[0].layers[0]).conv1.in_channels
            levels = []
            for j in range(len(depths)):
                pw, dw = _level([cast(LiteConv3x3, s.layers[j]) for s in streams[j:]])
                if j == 0:  # all streams read the same input: one dense conv, not a grouped one
                    dense = nn.Conv2d(first_in, pw.out_channels, 1, bias=False)
                    dense.weight.data.copy_(pw.weight)
                    pw = dense
                levels.append(nn.ModuleList([pw, dw]))
            self.levels = nn.ModuleList(levels)
        else:
            self.streams = nn.ModuleList(
                nn.Sequential(*(_fold_any(layer) for layer in s.layers)) for s in streams
            )
        self.fusion = block.fusion
        # the shared gate (unified, streamwise), one per stream (separate) or none
        self.gate: AggregationGate | nn.ModuleList | None = None
        if block.fusion in ("unified", "streamwise"):
            self.gate = block.gate
        elif block.fusion == "separate":
            self.gate = block.gates
        elif block.fusion == "static":
            self.register_buffer("static", torch.sigmoid(block.static_gates.detach()))
        self.conv3 = FoldedConv(block.conv3)
        self.IN = block.IN
        self.downsample = FoldedConv(block.downsample) if block.downsample is not None else None
        self.IN_out = block.IN_out

    def run_streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self.levelled:
            return [stream(x) for stream in self.streams]
        outs = []
        h = x
        for j, level in enumerate(self.levels):
            pw, dw = cast(nn.ModuleList, level)  # (1x1 conv, depthwise conv): _level
            if j:
                h = h[:, self.mid :].contiguous(memory_format=torch.channels_last)
            h = conv_relu(cast(nn.Conv2d, dw), pw(h))
            outs.append(h[:, : self.mid])
        return outs

    def fuse(self, xs: list[torch.Tensor]) -> torch.Tensor:
        if self.fusion == "concat":
            return torch.cat(xs, dim=1)
        if self.fusion in ("add", "none"):  # "none": the one stream of Fig. 4(a)
            return torch.stack(xs).sum(0)
        if self.fusion == "static":
            gates = list(cast(torch.Tensor, self.static).unbind(0))
        elif self.fusion == "separate":
            gates = [g(x) for g, x in zip(cast(nn.ModuleList, self.gate), xs, strict=True)]
        else:  # one MLP pass over the pooled outputs of every stream
            gate = cast(AggregationGate, self.gate)
            pooled = torch.cat([x.mean((2, 3)) for x in xs])  # (T*N, mid)
            hidden = F.relu(F.linear(pooled, gate.fc1.weight.flatten(1), gate.fc1.bias))
            g = torch.sigmoid(F.linear(hidden, gate.fc2.weight.flatten(1), gate.fc2.bias))
            gates = [t[:, :, None, None] for t in g.chunk(len(xs))]
        out = xs[0] * gates[0]
        for x, g in zip(xs[1:], gates[1:], strict=True):
            out.addcmul_(x, g)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.fuse(self.run_streams(self.conv1(x))))
        if self.IN is not None:
            out = self.IN(out)
        out.add_(identity)
        if self.IN_out is not None:
            out = self.IN_out(out)
        return out.relu_()


class FoldedLite(nn.Module):
    """A Lite 3x3 layer with its BN folded into the depthwise conv."""

    def __init__(self, lite: LiteConv3x3) -> None:
        super().__init__()
        self.pw, self.dw = _level([lite])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_relu(self.dw, self.pw(x))


def _fold_any(layer: nn.Module) -> nn.Module:
    if isinstance(layer, LiteConv3x3):
        return FoldedLite(layer)
    if isinstance(layer, ConvNormAct):
        return FoldedConv(layer)
    raise TypeError(f"cannot fold {type(layer).__name__}")


class FastOSNet(nn.Module):
    """Eval-only OSNet: ``(N, 3, H, W)`` images -> ``(N, feature_dim)`` embeddings."""

    def __init__(
        self, model: OSNet, channels_last: bool = True, level_streams: bool = False
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.conv1 = FoldedConv(model.conv1)
        self.maxpool = model.maxpool

        def stage(seq: nn.Sequential) -> nn.Sequential:
            return nn.Sequential(*(FastOSBlock(cast(OSBlock, b), level_streams) for b in seq))

        def transition(seq: nn.Sequential) -> nn.Sequential:
            return nn.Sequential(FoldedConv(cast(ConvNormAct, seq[0])), seq[1])

        self.conv2, self.pool2 = stage(model.conv2), transition(model.pool2)
        self.conv3, self.pool3 = stage(model.conv3), transition(model.pool3)
        self.conv4, self.conv5 = stage(model.conv4), FoldedConv(model.conv5)
        linear, bn = cast(nn.Linear, model.fc[0]), cast(nn.BatchNorm1d, model.fc[1])
        w, b = fold_bn(linear.weight, linear.bias, bn)
        self.fc = nn.Linear(linear.in_features, linear.out_features)
        self.fc.weight.data.copy_(w)
        self.fc.bias.data.copy_(b)
        self.bnneck = model.bnneck.eval() if model.bnneck is not None else None
        self.feature_dim = model.feature_dim
        self.arch = model.arch
        self.spec: ModelSpec | None = model.spec  # the ModelSpec travels with the weights
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.eval()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv3(x))
        return self.conv5(self.conv4(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.fc(self.forward_features(x).mean((2, 3))).relu_()
        return v if self.bnneck is None else self.bnneck(v)


@torch.no_grad()
def optimize_for_inference(
    model: nn.Module, channels_last: bool = True, level_streams: bool = False
) -> nn.Module:
    """A fast eval-only copy of ``model`` (which is left unchanged) giving the same features.

    ``model`` is an ``OSNet`` or a ``MutualPair`` of two (another module raises ``TypeError``).
    A deep-mutual-learning pair becomes a pair of fast networks with the same ``use``. Weights
    that are not finite once folded raise ``CheckpointError``: the plain model would give NaN
    features, the fused ReLUs of the fast one zeros.
    """
    if isinstance(model, MutualPair):
        first, second = (
            optimize_for_inference(m, channels_last, level_streams) for m in model.networks()
        )
        pair = MutualPair(first, second, use=model.use)
        pair.spec = model.spec
        return pair.eval()
    if not isinstance(model, OSNet):
        raise TypeError(f"expected an OSNet, got {type(model).__name__}")
    fast = FastOSNet(copy.deepcopy(model).eval(), channels_last, level_streams)
    tensors = [*fast.named_parameters(), *fast.named_buffers()]
    damaged = [name for name, t in tensors if t.is_floating_point() and not t.isfinite().all()]
    if damaged:  # the fused ReLUs would turn the NaN into zeros: features would look fine
        raise CheckpointError(
            f"{model.arch or 'the OSNet'}: {len(damaged)} tensor(s) are NaN or infinite once the "
            f"BatchNorms are folded, e.g. {', '.join(damaged[:3])} (NaN weights or a negative "
            "running_var): the weights are damaged"
        )
    return fast
