"""OSNet building blocks: conv-norm-activation, Lite 3x3, aggregation gates, omni-scale block.

Attribute names follow the reference implementation's ``osnet_ain.py`` state_dict layout
(``conv1.conv``, ``conv1.bn``, ``conv2.{t}.layers.{j}``, ``gate.fc1``...), so its checkpoints
load without renaming; ``weights.py`` converts the older ``osnet.py`` layout.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from omnireid.errors import UsageError

# The largest stream count (T) and stream depth a block is built with: T streams hold
# T(T+1)/2 layers, so T = 1000 would take hours to build; Table 5 studies T = 1..4
MAX_STREAMS = 16
MAX_STREAM_DEPTH = 16

Norm = Literal["bn", "in", "none"]
Fusion = Literal["unified", "separate", "streamwise", "static", "concat", "add", "none"]
InstanceNormPlacement = Literal["none", "in", "out", "in_out"]

FUSIONS: tuple[str, ...] = (
    "unified",
    "separate",
    "streamwise",
    "static",
    "concat",
    "add",
    "none",
)
IN_PLACEMENTS: tuple[InstanceNormPlacement, ...] = ("none", "in", "out", "in_out")


def _norm(kind: Norm, channels: int) -> nn.Module | None:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "in":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}; expected 'bn', 'in' or 'none'")


class ConvNormAct(nn.Module):
    """Convolution (no bias) -> norm -> optional ReLU. The norm is stored as ``bn`` (even IN)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        norm: Norm = "bn",
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
        )
        self.bn = _norm(norm, out_channels)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.act else x


class LiteConv3x3(nn.Module):
    """Lite 3x3 (ICCV Fig. 3b): pointwise 1x1 (linear) -> depthwise 3x3 -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv2(self.conv1(x))))


def conv3x3_layer(in_channels: int, out_channels: int, lite: bool) -> nn.Module:
    """A stream's 3x3 layer: Lite 3x3, or standard 3x3 conv + BN + ReLU (Table 5, model 2)."""
    if lite:
        return LiteConv3x3(in_channels, out_channels)
    return ConvNormAct(in_channels, out_channels, 3, padding=1)


class Stream(nn.Module):
    """A stack of ``depth`` 3x3 layers: receptive field (2 * depth + 1)^2 (ICCV Eq. 2)."""

    def __init__(self, channels: int, depth: int, lite: bool = True) -> None:
        super().__init__()
        if not 1 <= depth <= MAX_STREAM_DEPTH:
            raise UsageError(f"stream depth must be within [1, {MAX_STREAM_DEPTH}], got {depth}")
        self.layers = nn.Sequential(
            *[conv3x3_layer(channels, channels, lite) for _ in range(depth)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class AggregationGate(nn.Module):
    """Input-dependent gate G(x) (ICCV Eq. 3): GAP -> 1x1 C->C/r -> ReLU -> 1x1 -> sigmoid.

    Returns the gate values, ``(N, num_gates, 1, 1)``: ``num_gates = C`` gives channel-wise
    gates, ``num_gates = 1`` one scalar per stream (Table 5, model 7).
    """

    def __init__(self, channels: int, num_gates: int | None = None, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise UsageError(f"gate needs channels >= reduction ({reduction}), got {channels}")
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.fc2 = nn.Conv2d(hidden, num_gates or channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = F.adaptive_avg_pool2d(x, 1)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(g))))


class OSBlock(nn.Module):
    """Omni-scale residual bottleneck (ICCV Fig. 4b; TPAMI Fig. 4 for instance norm).

    1x1 reduce to ``out/4`` -> T streams of 1..T 3x3 layers -> fusion -> 1x1 + BN -> add the
    shortcut -> ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        streams: T, the number of streams.
        fusion: how streams are combined: ``unified`` (one shared channel-wise gate, the paper's
            design), ``separate`` (one gate per stream), ``streamwise`` (shared gate with one scalar
            per stream), ``static`` (learned, input-independent channel weights), ``concat`` or
            ``add`` (Table 5, models 1 and 4-8); ``none`` with ``streams=1`` is the baseline
            bottleneck of Fig. 4(a), Table 5 model 9 (T = 1: one Lite 3x3 stream, no gate;
            ``streams=1`` with a gate is an SE-like block, not the paper's model 9).
        lite: Lite 3x3 layers (True) or standard 3x3 convolutions (Table 5, model 2).
        stream_depth: None for the scale-incremental depths 1..T; an integer makes every stream
            that deep (ResNeXt-like, Table 5 model 3).
        instance_norm: IN placement (TPAMI Sec. 3.3): ``none``; ``in``, inside the residual before
            the addition (the last 1x1 conv then has no BN); ``out``, after the addition; both.
        bottleneck_reduction: bottleneck width is ``out_channels // bottleneck_reduction``.
        gate_reduction: hidden width of the gate MLP is ``mid // gate_reduction``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        streams: int = 4,
        fusion: Fusion = "unified",
        lite: bool = True,
        stream_depth: int | None = None,
        instance_norm: InstanceNormPlacement = "none",
        bottleneck_reduction: int = 4,
        gate_reduction: int = 16,
    ) -> None:
        super().__init__()
        if not 1 <= streams <= MAX_STREAMS:
            raise UsageError(f"streams (T) must be within [1, {MAX_STREAMS}], got {streams}")
        if stream_depth is not None and not 1 <= stream_depth <= MAX_STREAM_DEPTH:
            raise UsageError(
                f"stream_depth must be within [1, {MAX_STREAM_DEPTH}], got {stream_depth}"
            )
        if fusion not in FUSIONS:
            raise UsageError(f"unknown fusion {fusion!r}; expected one of {FUSIONS}")
        if fusion == "none" and streams != 1:
            raise UsageError(
                f"fusion='none' is the single-stream baseline of Fig. 4(a): it needs streams=1, "
                f"got {streams}"
            )
        if instance_norm not in IN_PLACEMENTS:
            raise UsageError(f"unknown instance_norm {instance_norm!r}; expected {IN_PLACEMENTS}")
        if out_channels % bottleneck_reduction:
            raise ValueError(
                f"out_channels ({out_channels}) must be divisible by {bottleneck_reduction}"
            )
        mid = out_channels // bottleneck_reduction
        self.fusion = fusion
        self.conv1 = ConvNormAct(in_channels, mid, 1)
        depths = [stream_depth or t for t in range(1, streams + 1)]
        self.conv2 = nn.ModuleList(Stream(mid, d, lite) for d in depths)
        if fusion == "unified":
            self.gate = AggregationGate(mid, reduction=gate_reduction)
        elif fusion == "streamwise":
            self.gate = AggregationGate(mid, num_gates=1, reduction=gate_reduction)
        elif fusion == "separate":
            self.gates = nn.ModuleList(
                AggregationGate(mid, reduction=gate_reduction) for _ in range(streams)
            )
        elif fusion == "static":
            # sigmoid(0) = 0.5: the same starting range as a dynamic gate, but input-independent.
            self.static_gates = nn.Parameter(torch.zeros(streams, mid, 1, 1))
        inside = instance_norm in ("in", "in_out")
        fused = mid * streams if fusion == "concat" else mid
        self.conv3 = ConvNormAct(fused, out_channels, 1, norm="none" if inside else "bn", act=False)
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if inside else None
        self.downsample = (
            ConvNormAct(in_channels, out_channels, 1, act=False)
            if in_channels != out_channels
            else None
        )
        after = instance_norm in ("out", "in_out")
        self.IN_out = nn.InstanceNorm2d(out_channels, affine=True) if after else None

    def stream_gates(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-stream gates, each broadcastable to ``(N, mid, H, W)``; empty for concat/add/none."""
        if self.fusion in ("unified", "streamwise"):
            return [self.gate(x) for x in xs]
        if self.fusion == "separate":
            return [gate(x) for gate, x in zip(self.gates, xs, strict=True)]
        if self.fusion == "static":
            return list(torch.sigmoid(self.static_gates).unbind(0))
        return []

    def fuse(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Combine the stream outputs: ``sum_t G_t * x_t`` (ICCV Eq. 3), a sum, or a concat."""
        if self.fusion == "concat":
            return torch.cat(xs, dim=1)
        gates = self.stream_gates(xs)
        out = xs[0] * gates[0] if gates else xs[0]
        for t in range(1, len(xs)):
            out = out + (xs[t] * gates[t] if gates else xs[t])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        mid = self.conv1(x)
        out = self.conv3(self.fuse([stream(mid) for stream in self.conv2]))
        if self.IN is not None:
            out = self.IN(out)
        out = out + identity
        if self.IN_out is not None:
            out = self.IN_out(out)
        return F.relu(out)
