"""OSNet (ICCV'19 Table 1) and its instance-normalised variants (TPAMI'21).

``OSNet`` holds the structure; the ``osnet_*`` builders below choose widths and block types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from omnireid.errors import UsageError
from omnireid.models.layers import ConvNormAct, Fusion, InstanceNormPlacement, Norm, OSBlock
from omnireid.models.spec import ModelSpec

Stem = Literal["table1", "cifar"]

# The most blocks per stage and the widest embedding a model is built with (Table 1 has 2 and
# 512; the bounds keep a typo such as layers=[2000, ...] from building for hours or the memory)
MAX_BLOCKS = 32
MAX_FEATURE_DIM = 8192

# Table 6's width multiplier beta applied to [conv1, conv2, conv3, conv4] of Table 1.
WIDTHS: dict[str, tuple[int, int, int, int]] = {
    "x1_0": (64, 256, 384, 512),
    "x0_75": (48, 192, 288, 384),
    "x0_5": (32, 128, 192, 256),
    "x0_25": (16, 64, 96, 128),
}

# TPAMI Table 1: OSNet-AIN's block types per stage, found by the architecture search.
AIN_BLOCKS: tuple[tuple[InstanceNormPlacement, ...], ...] = (
    ("in", "in"),
    ("none", "in"),
    ("in", "none"),
)
# OSNet-IBN (TPAMI Sec. 3.3): IN after the residual addition in both conv2 blocks.
IBN_BLOCKS: tuple[tuple[InstanceNormPlacement, ...], ...] = (
    ("out", "out"),
    ("none", "none"),
    ("none", "none"),
)


class OSNet(nn.Module):
    """Omni-Scale Network.

    stem (7x7/2 conv, 3x3/2 max-pool) -> conv2 -> transition (pool2) -> conv3 -> transition
    (pool3) -> conv4 -> conv5 (1x1) -> global average pool -> fc (Linear, BN1d, ReLU) -> classifier.

    Args:
        channels: widths of conv1 (stem), conv2, conv3, conv4; conv5 keeps conv4's width.
        layers: omni-scale blocks per stage (default Table 1's 2-2-2; the CIFAR variant 3-8-6).
        num_classes: classifier outputs (training identities).
        feature_dim: size of the fc embedding; not scaled by the width multiplier.
        block_norms: instance-norm placement of every block, one tuple per stage; overrides
            the plain blocks of ``layers`` (TPAMI block types ``none``, ``in``, ``out``,
            ``in_out``); giving both with other block counts is an error.
        stem_norm: ``bn``, or ``in`` for the instance-normalised stem of OSNet-IBN/AIN (IBN:
            TPAMI Sec. 4.3 puts IN in "conv1 & conv2"; AIN: from the reference code's
            ``osnet_ain.py``, TPAMI Table 1 lists a plain conv1 for OSNet-AIN).
        stem: ``table1`` (7x7 stride-2 conv, 3x3 stride-2 max-pool: /4) or ``cifar`` for 32x32
            images (one 3x3 stride-1 conv, no pooling, the first layer of the CIFAR ResNets and
            Wide ResNets the paper's CIFAR setting follows [15, 74]): with Table 1's stem a
            32x32 image leaves 2x2 maps at conv4, with this one 8x8. ICCV Sec. 4.3 does not say
            which stem it used; this is our reading of "following the setting in [15, 74]".
        streams, fusion, lite, stream_depth: the Table 5 ablations, see ``OSBlock``.
        gate_reduction: reduction ratio of the aggregation gate's hidden layer (16).
        bnneck: beyond the papers (Luo et al., "Bag of Tricks", CVPRW 2019): a BatchNorm
            (scale only, its shift fixed at 0) between the embedding and the classifier. The
            triplet loss sees the embedding before it, the classifier the normalised one, and
            eval mode returns the normalised embedding. Off for the papers' models.

    Input ``(N, 3, H, W)``. ``forward`` returns the ``(N, feature_dim)`` embedding in eval mode;
    in train mode the ``(N, num_classes)`` logits, or ``(logits, embedding)`` when
    ``return_features=True`` (for metric losses such as triplet; with ``bnneck`` the
    embedding before the BNNeck).
    """

    # the ModelSpec a loader attaches (``models.loader.build_for``); None for a built model
    spec: ModelSpec | None = None

    def __init__(
        self,
        channels: Sequence[int] = WIDTHS["x1_0"],
        layers: Sequence[int] | None = None,
        num_classes: int = 1000,
        *,
        feature_dim: int = 512,
        block_norms: Sequence[Sequence[InstanceNormPlacement]] | None = None,
        stem_norm: Norm = "bn",
        stem: Stem = "table1",
        streams: int = 4,
        fusion: Fusion = "unified",
        lite: bool = True,
        stream_depth: int | None = None,
        gate_reduction: int = 16,
        bnneck: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"channels needs 4 widths (conv1..conv4), got {list(channels)}")
        if block_norms is None:
            layers = (2, 2, 2) if layers is None else tuple(layers)
            if len(layers) != 3 or not all(1 <= n <= MAX_BLOCKS for n in layers):
                raise UsageError(
                    f"layers needs 3 stage depths within [1, {MAX_BLOCKS}], got {list(layers)}"
                )
            plain: tuple[InstanceNormPlacement, ...] = ("none",)
            block_norms = [plain * n for n in layers]
        if len(block_norms) != 3 or any(len(stage) < 1 for stage in block_norms):
            raise UsageError(f"block_norms needs 3 non-empty stages, got {block_norms}")
        counts = tuple(len(stage) for stage in block_norms)
        if layers is not None and tuple(layers) != counts:
            raise UsageError(
                f"layers {list(layers)} conflicts with block_norms, which has {list(counts)} "
                "blocks per stage; give one of them"
            )
        if not 1 <= feature_dim <= MAX_FEATURE_DIM:
            raise UsageError(
                f"feature_dim must be within [1, {MAX_FEATURE_DIM}], got {feature_dim}"
            )
        self.feature_dim = feature_dim
        self.arch: str | None = None  # the registry name ``models.build`` built it by
        c1, c2, c3, c4 = channels

        def stage(c_in: int, c_out: int, norms: Sequence[InstanceNormPlacement]) -> nn.Sequential:
            return nn.Sequential(
                *(
                    OSBlock(
                        c_in if i == 0 else c_out,
                        c_out,
                        streams=streams,
                        fusion=fusion,
                        lite=lite,
                        stream_depth=stream_depth,
                        instance_norm=norm,
                        gate_reduction=gate_reduction,
                    )
                    for i, norm in enumerate(norms)
                )
            )

        def transition(c: int) -> nn.Sequential:
            return nn.Sequential(ConvNormAct(c, c, 1), nn.AvgPool2d(2, stride=2))

        if stem == "table1":
            self.conv1 = ConvNormAct(3, c1, 7, stride=2, padding=3, norm=stem_norm)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "cifar":
            self.conv1 = ConvNormAct(3, c1, 3, padding=1, norm=stem_norm)
            self.maxpool = nn.Identity()
        else:
            raise UsageError(f"stem must be 'table1' or 'cifar', got {stem!r}")
        self.conv2 = stage(c1, c2, block_norms[0])
        self.pool2 = transition(c2)
        self.conv3 = stage(c2, c3, block_norms[1])
        self.pool3 = transition(c3)
        self.conv4 = stage(c3, c4, block_norms[2])
        self.conv5 = ConvNormAct(c4, c4, 1)
        self.fc = nn.Sequential(
            nn.Linear(c4, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True)
        )
        self.bnneck: nn.BatchNorm1d | None = None
        if bnneck:
            self.bnneck = nn.BatchNorm1d(feature_dim)
        self.classifier: nn.Module = nn.Linear(feature_dim, num_classes)  # Identity: none
        init_weights(self)
        if self.bnneck is not None:
            self.bnneck.bias.requires_grad_(False)  # BNNeck trains the scale only

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` images -> ``(N, C, H/16, W/16)`` conv5 feature maps."""
        x = self.maxpool(self.conv1(x))
        x = self.pool2(self.conv2(x))
        x = self.pool3(self.conv3(x))
        return self.conv5(self.conv4(x))

    def forward_embedding(self, fmap: torch.Tensor) -> torch.Tensor:
        """``(N, C, h, w)`` feature maps -> ``(N, feature_dim)`` embedding (GAP then fc)."""
        return self.fc(F.adaptive_avg_pool2d(fmap, 1).flatten(1))

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(N, C, h, w)`` conv5 feature maps -> ``(N, num_classes)`` logits in any mode, or
        with ``pre_logits`` the ``(N, feature_dim)`` embedding the classifier sees (after the
        BNNeck when there is one): what a classification task evaluates with (timm's head)."""
        v = self.forward_embedding(fmap)
        normed = v if self.bnneck is None else self.bnneck(v)
        return normed if pre_logits else self.classifier(normed)

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier (0: none, ``reset_classifier(0)``)."""
        return self.classifier.out_features if isinstance(self.classifier, nn.Linear) else 0

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier over ``num_classes`` outputs, initialised as at build time (0: no
        classifier at all, for a model that only embeds: its weights then hold no classifier
        tensors)."""
        if num_classes < 0:
            raise UsageError(f"num_classes must be >= 0, got {num_classes}")
        old = self.classifier
        head: nn.Module = nn.Identity()
        if num_classes > 0:
            head = nn.Linear(self.feature_dim, num_classes)
            init_weights(head)
        if isinstance(old, nn.Linear):
            head.to(old.weight.device)
        self.classifier = head

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        v = self.forward_embedding(self.forward_features(x))
        normed = v if self.bnneck is None else self.bnneck(v)
        if not self.training:
            return normed
        logits = self.classifier(normed)
        return (logits, v) if return_features else logits


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) convs, unit norms, N(0, 0.01) linears, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.InstanceNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def osnet_x1_0(num_classes: int = 1000, **options) -> OSNet:
    """OSNet x1.0 (Table 1): 2.2M parameters, 978.9M mult-adds at 256x128."""
    return OSNet(WIDTHS["x1_0"], num_classes=num_classes, **options)


def osnet_x0_75(num_classes: int = 1000, **options) -> OSNet:
    """OSNet with width multiplier beta = 0.75 (Table 6)."""
    return OSNet(WIDTHS["x0_75"], num_classes=num_classes, **options)


def osnet_x0_5(num_classes: int = 1000, **options) -> OSNet:
    """OSNet with width multiplier beta = 0.5 (Table 6)."""
    return OSNet(WIDTHS["x0_5"], num_classes=num_classes, **options)


def osnet_x0_25(num_classes: int = 1000, **options) -> OSNet:
    """OSNet with width multiplier beta = 0.25 (Table 6)."""
    return OSNet(WIDTHS["x0_25"], num_classes=num_classes, **options)


# Options an instance-normalised builder fixes itself: its block types are the paper's.
IN_FIXED: tuple[str, ...] = ("layers", "block_norms", "stem_norm")


def _in_variant(
    name: str,
    width: str,
    blocks: Sequence[Sequence[InstanceNormPlacement]],
    num_classes: int,
    options: dict,
) -> OSNet:
    fixed = sorted(set(options) & set(IN_FIXED))
    if fixed:
        raise UsageError(
            f"{name} does not take {', '.join(fixed)}: its blocks and stem are fixed (TPAMI "
            f"Sec. 3.3 / Table 1); build a plain osnet_{width} with block_norms=... instead"
        )
    return OSNet(
        WIDTHS[width], num_classes=num_classes, block_norms=blocks, stem_norm="in", **options
    )


def osnet_ibn_x1_0(num_classes: int = 1000, **options) -> OSNet:
    """OSNet-IBN x1.0: IN stem, IN after the residual in both conv2 blocks (TPAMI Sec. 3.3)."""
    return _in_variant("osnet_ibn_x1_0", "x1_0", IBN_BLOCKS, num_classes, options)


def osnet_ibn_x0_25(num_classes: int = 1000, **options) -> OSNet:
    """OSNet-IBN x0.25: the IBN design of ``osnet_ibn_x1_0`` at width x0.25. Beyond the
    reference's model list (it has IBN at x1.0 only); added for the TPAMI comparison at x0.25."""
    return _in_variant("osnet_ibn_x0_25", "x0_25", IBN_BLOCKS, num_classes, options)


def osnet_ain_x1_0(num_classes: int = 1000, **options) -> OSNet:
    """OSNet-AIN x1.0: the searched IN placement of TPAMI Table 1, with the IN stem of the
    reference code (Table 1 itself lists a plain conv1; ``ain_bnstem`` control in
    benchmarks/crossdomain_twocam.py: AIN's blocks with a BN stem)."""
    return _in_variant("osnet_ain_x1_0", "x1_0", AIN_BLOCKS, num_classes, options)


def osnet_ain_x0_75(num_classes: int = 1000, **options) -> OSNet:
    """OSNet-AIN x0.75."""
    return _in_variant("osnet_ain_x0_75", "x0_75", AIN_BLOCKS, num_classes, options)


def osnet_ain_x0_5(num_classes: int = 1000, **options) -> OSNet:
    """OSNet-AIN x0.5."""
    return _in_variant("osnet_ain_x0_5", "x0_5", AIN_BLOCKS, num_classes, options)


def osnet_ain_x0_25(num_classes: int = 1000, **options) -> OSNet:
    """OSNet-AIN x0.25."""
    return _in_variant("osnet_ain_x0_25", "x0_25", AIN_BLOCKS, num_classes, options)
