"""Differentiable search of instance-normalisation placements in OSNet (TPAMI'21 Sec. 3.3).

Every omni-scale block of the supernet holds the four candidate block types of Fig. 5, OS,
OS+IN_in, OS+IN_out and OS+IN_in-out (``CANDIDATES``), as four separate ``OSBlock``s that
share no weights (as in Fig. 5 and the reference code), plus one architecture parameter
vector ``pi`` of 4 logits. In train mode a block returns ``sum_w alpha_w * w(x)`` (Eq. 5) with
``alpha`` a Gumbel-Softmax sample at temperature lambda (Eq. 7-8); the network is run S times
with fresh samples when ``samples > 1`` and the losses averaged (Eq. 12, 15). Eq. 8 writes
``log pi`` with pi as probabilities; with pi as logits (Eq. 7) the two are the same
distribution, since ``log softmax(pi) = pi - const``. In eval mode a block runs only its
``argmax pi`` candidate: the derived child of Sec. 3.3 "Search Outcome" (``eval_mode =
"softmax"`` uses the noise-free ``softmax(pi)`` mixture instead).

``derive_spec`` turns the argmax choices into a child spec that ``models.build_from_spec``
builds as a plain ``OSNet``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from omnireid.models.layers import IN_PLACEMENTS, InstanceNormPlacement, Norm, OSBlock
from omnireid.models.osnet import WIDTHS, OSNet, init_weights

# ("none", "in", "out", "in_out"): Fig. 5 (a)-(d)
CANDIDATES: tuple[InstanceNormPlacement, ...] = IN_PLACEMENTS
CANDIDATE_NAMES: tuple[str, ...] = ("OS", "OS+IN_in", "OS+IN_out", "OS+IN_in-out")
EvalMode = Literal["argmax", "softmax"]
SPEC_FORMAT = "omnireid.child_arch/1"


def temperature_at(
    epoch: int,
    *,
    initial: float = 10.0,
    decay: float = 0.5,
    step: int = 20,
    minimum: float = 1.0,
) -> float:
    """Softmax temperature lambda of 0-based epoch e: ``max(minimum, initial * decay^(e // step))``.

    TPAMI Sec. 4.2: starts at 10, halves every 20 epochs, "the minimum is fixed to 1" (footnote
    7: lambda < 1 makes training unstable); the reference code's floor is 1 as well.
    """
    if epoch < 0 or step < 1 or initial <= 0 or not 0 < decay <= 1 or minimum <= 0:
        raise ValueError(
            f"need epoch >= 0, step >= 1, initial > 0, 0 < decay <= 1, minimum > 0; got "
            f"{epoch}, {step}, {initial}, {decay}, {minimum}"
        )
    return max(minimum, initial * decay ** (epoch // step))


def drop_affine(module: nn.Module) -> None:
    """Remove the learnable scale and shift of every BatchNorm/InstanceNorm in ``module`` (the
    normalisation itself, and BN's running statistics, stay)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.modules.instancenorm._InstanceNorm):
            m.affine = False
            m.register_parameter("weight", None)
            m.register_parameter("bias", None)


class MixedOSBlock(nn.Module):
    """One searchable block: the four candidates of ``CANDIDATES`` and their logits ``pi``.

    ``norm_affine=False`` (the reference search code's ``NORM_AFFINE``) gives every norm of the
    candidates (BN and IN) no learnable scale/shift during the search. Input
    ``(N, C_in, H, W)``, output ``(N, C_out, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        norm_affine: bool = False,
        gate_reduction: int = 16,
        eval_mode: EvalMode = "argmax",
    ) -> None:
        super().__init__()
        if eval_mode not in ("argmax", "softmax"):
            raise ValueError(f"eval_mode must be 'argmax' or 'softmax', got {eval_mode!r}")
        self.candidates = nn.ModuleList(
            OSBlock(in_channels, out_channels, instance_norm=p, gate_reduction=gate_reduction)
            for p in CANDIDATES
        )
        if not norm_affine:
            drop_affine(self.candidates)
        self.pi = nn.Parameter(torch.zeros(len(CANDIDATES)))  # uniform P(alpha) at the start
        self.temperature = 10.0
        self.eval_mode = eval_mode

    def probabilities(self) -> torch.Tensor:
        """``(4,)`` P(alpha_w = 1) = softmax(pi) (Eq. 7)."""
        return F.softmax(self.pi, dim=0)

    def choice(self) -> int:
        """Index of the largest pi (the first one on a tie): the derived block type."""
        return int(torch.argmax(self.pi.detach()).item())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.eval_mode == "argmax":
            return self.candidates[self.choice()](x)
        if self.training:
            alpha = F.gumbel_softmax(self.pi, tau=self.temperature, hard=False)  # Eq. 8
        else:
            alpha = self.probabilities()
        out = alpha[0] * self.candidates[0](x)
        for w in range(1, len(self.candidates)):
            out = out + alpha[w] * self.candidates[w](x)
        return out


class SearchOSNet(OSNet):
    """The over-parameterised OSNet of Fig. 5: every conv2-conv4 block is a ``MixedOSBlock``.

    Args:
        channels: widths of conv1..conv4 (``WIDTHS``).
        num_classes: classifier outputs.
        base: the plain builder with these widths (``osnet_x0_25``...), written into the spec.
        layers: blocks per stage (Table 1: 2-2-2).
        stem_norm: the stem is not searched; ``in`` as in OSNet-AIN.
        norm_affine: every norm layer (stem, blocks, transitions, conv5, the fc's BN) learns a
            scale/shift; off by default, as the reference search code's ``NORM_AFFINE``.
        samples: S, Gumbel samples per training forward (Eq. 12, 15). With S > 1 train mode
            returns ``(S, N, C)`` logits and ``(S, N, D)`` features, one per sample.
        eval_mode: ``argmax`` or ``softmax``, see ``MixedOSBlock``.

    ``arch_parameters()`` are the six ``*.pi`` vectors; ``network_parameters()`` all others.
    """

    def __init__(
        self,
        channels: tuple[int, int, int, int],
        num_classes: int = 1000,
        *,
        base: str = "osnet_x1_0",
        layers: tuple[int, int, int] = (2, 2, 2),
        feature_dim: int = 512,
        stem_norm: Norm = "in",
        norm_affine: bool = False,
        samples: int = 1,
        eval_mode: EvalMode = "argmax",
        gate_reduction: int = 16,
    ) -> None:
        super().__init__(
            channels,
            layers,
            num_classes,
            feature_dim=feature_dim,
            stem_norm=stem_norm,
            gate_reduction=gate_reduction,
        )
        if samples < 1:
            raise ValueError(f"samples (S) must be >= 1, got {samples}")
        self.base, self.stem_norm, self.samples = base, stem_norm, samples
        _, c2, c3, c4 = channels
        c_in = channels[0]
        for name, c_out, n in zip(("conv2", "conv3", "conv4"), (c2, c3, c4), layers, strict=True):
            blocks = [
                MixedOSBlock(
                    c_in if i == 0 else c_out,
                    c_out,
                    norm_affine=norm_affine,
                    gate_reduction=gate_reduction,
                    eval_mode=eval_mode,
                )
                for i in range(n)
            ]
            setattr(self, name, nn.Sequential(*blocks))
            c_in = c_out
        init_weights(self)
        if not norm_affine:
            drop_affine(self)

    def mixed_blocks(self) -> Iterator[tuple[str, MixedOSBlock]]:
        """``("conv2.0", block)``... in network order."""
        for name, m in self.named_modules():
            if isinstance(m, MixedOSBlock):
                yield name, m

    def arch_parameters(self) -> list[nn.Parameter]:
        return [m.pi for _, m in self.mixed_blocks()]

    def network_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def set_temperature(self, temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        for _, m in self.mixed_blocks():
            m.temperature = float(temperature)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.training or self.samples == 1:
            return super().forward(x, return_features)
        outs = [super(SearchOSNet, self).forward(x, True) for _ in range(self.samples)]
        logits = torch.stack([o[0] for o in outs])
        return (logits, torch.stack([o[1] for o in outs])) if return_features else logits


def build_supernet(base: str, num_classes: int = 1000, **options: Any) -> SearchOSNet:
    """The supernet with the widths of a plain builder, e.g. ``build_supernet("osnet_x0_25")``."""
    width = base.removeprefix("osnet_")
    if not base.startswith("osnet_x") or width not in WIDTHS:
        valid = [f"osnet_{w}" for w in WIDTHS]
        raise ValueError(f"supernet base must be a plain OSNet width, one of {valid}; got {base!r}")
    return SearchOSNet(WIDTHS[width], num_classes, base=base, **options)


def derive_choices(model: SearchOSNet) -> list[list[str]]:
    """``argmax pi`` of every block as block types, one list per stage (``[["in", "in"], ...]``)."""
    stages: dict[str, list[str]] = {}
    for name, block in model.mixed_blocks():
        stages.setdefault(name.split(".")[0], []).append(CANDIDATES[block.choice()])
    return [stages[s] for s in ("conv2", "conv3", "conv4")]


def derive_spec(model: SearchOSNet) -> dict[str, Any]:
    """The child architecture spec (JSON-ready) that ``models.build_from_spec`` builds.

    ``base``, ``stem_norm`` and ``block_norms`` define the network; ``search`` records pi and
    softmax(pi) per block for the reader (ignored by the builder).
    """
    blocks = {
        name: {
            "pi": [round(v, 6) for v in m.pi.detach().tolist()],
            "prob": [round(v, 6) for v in m.probabilities().detach().tolist()],
            "choice": CANDIDATE_NAMES[m.choice()],
        }
        for name, m in model.mixed_blocks()
    }
    return {
        "format": SPEC_FORMAT,
        "base": model.base,
        "stem_norm": model.stem_norm,
        "block_norms": derive_choices(model),
        "feature_dim": model.feature_dim,
        "search": {"candidates": list(CANDIDATES), "blocks": blocks},
    }
