"""Model card: what a checkpoint is, what it costs, how it was trained and how it scored.

``read_card(path)`` accepts a training run folder (``config.json``, ``metrics.json``, ``latest``
-> ``epoch-XXXX/{model.safetensors, meta.json}``, see ``engine/checkpoint.py``), one checkpoint
folder, or a plain weights file (``.pt``/``.pth``/``.safetensors``, e.g. the reference's). The
architecture comes from the checkpoint's ``meta.json``; for a plain file it is inferred by
matching the tensor names and shapes against every ``models.list_models()`` architecture (or
given as ``arch``). The weights are loaded into the built model, so a card is only printed
for a checkpoint that really fits it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omnireid.engine.checkpoint import latest_checkpoint
from omnireid.models import build, list_models
from omnireid.models.complexity import count_complexity
from omnireid.models.osnet import WIDTHS
from omnireid.models.weights import (
    CheckpointError,
    StateDict,
    load_weights,
    read_state_dict,
    to_native_layout,
)

EVAL_KEYS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "mA", "accuracy", "precision")
EVAL_KEYS += ("recall", "f1")


@dataclass
class ModelCard:
    source: str
    arch: str
    arch_from: str  # "checkpoint", "tensor shapes" or "--arch"
    task: str  # "reid" or "attributes"
    outputs: int  # identities of the classifier, or attributes
    params: int  # classifier / attribute head excluded (the papers' convention)
    params_total: int
    mult_adds: int
    height: int
    width: int
    epoch: int | None = None
    attributes: list[str] = field(default_factory=list)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def _shapes_match(model: nn.Module, state: StateDict) -> bool:
    own = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("batches_tracked")}
    theirs = {k: v.shape for k, v in state.items() if not k.endswith("batches_tracked")}
    return own == theirs


def _stem_width(name: str) -> int | None:
    """conv1 width of a builder named ``..._x<beta>`` (None when the name does not say)."""
    widths = WIDTHS.get("x" + name.rsplit("_x", 1)[-1])
    return widths[0] if widths else None


def infer_arch(state: StateDict) -> str:
    """The one architecture whose tensor names and shapes equal ``state``'s (any classifier)."""
    state = to_native_layout(state)
    if "classifier.weight" not in state or "fc.0.weight" not in state:
        raise CheckpointError(
            "cannot infer the architecture: no classifier/fc tensors; give --arch"
        )
    classes, dim = state["classifier.weight"].shape[0], state["fc.0.weight"].shape[0]
    stem = state["conv1.conv.weight"].shape[0] if "conv1.conv.weight" in state else None
    found = [
        name
        for name in list_models()
        if _stem_width(name) in (None, stem)  # skip building what cannot match
        and _shapes_match(build(name, num_classes=classes, feature_dim=dim), state)
    ]
    if len(found) != 1:
        what = f"several architectures ({found})" if found else "no known architecture"
        raise CheckpointError(f"the tensors match {what}; give the architecture with --arch")
    return found[0]


def _checkpoint_dir(path: Path) -> Path | None:
    if (path / "model.safetensors").is_file():
        return path
    return latest_checkpoint(path) if path.is_dir() else None


def _build(arch: str, task: str, state: StateDict, meta: dict[str, Any]) -> tuple[nn.Module, int]:
    """The model ``state`` loads into (strictly, but any classifier size), and its outputs."""
    if task == "attributes":
        from omnireid.models.attributes import build_attribute_model

        n = state["head.weight"].shape[0]
        dim = state["head.weight"].shape[1]
        model = build_attribute_model(arch, n, feature_dim=dim)
        model.load_state_dict(state, strict=True)
        return model, n
    state = to_native_layout(state)
    n = state["classifier.weight"].shape[0] if "classifier.weight" in state else 1000
    dim = state["fc.0.weight"].shape[0] if "fc.0.weight" in state else 512
    model = build(arch, num_classes=n, feature_dim=dim)
    load_weights(model, state)
    return model, n


def read_card(
    path: str | Path, arch: str | None = None, height: int | None = None, width: int | None = None
) -> ModelCard:
    """The card of a run folder, checkpoint folder or weights file (see the module docstring).

    ``height``/``width`` (default: the checkpoint's preprocessing, else 256x128) set the input
    size of the mult-add count.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"not found: {path}")
    ckpt = _checkpoint_dir(path)
    if path.is_dir() and ckpt is None:
        raise CheckpointError(f"{path} is neither a run folder nor a checkpoint folder")
    meta: dict[str, Any] = {}
    if ckpt is not None:
        if (ckpt / "meta.json").is_file():
            meta = json.loads((ckpt / "meta.json").read_text())
        state = read_state_dict(ckpt / "model.safetensors")
    else:
        state = read_state_dict(path)
    task = meta.get("task", "attributes" if "head.weight" in state else "reid")
    if arch is not None:
        arch_from = "--arch"
    elif "arch" in meta:
        arch, arch_from = meta["arch"], "checkpoint"
    else:
        backbone = state
        if task == "attributes":  # the backbone without its head, and a stand-in classifier
            backbone = {
                k.removeprefix("backbone."): v
                for k, v in state.items()
                if k.startswith("backbone.")
            }
            dim = backbone["fc.0.weight"].shape[0] if "fc.0.weight" in backbone else 1
            backbone["classifier.weight"] = torch.zeros(1, dim)
            backbone["classifier.bias"] = torch.zeros(1)
        arch, arch_from = infer_arch(backbone), "tensor shapes"
    if meta.get("mutual"):
        raise CheckpointError(f"{path}: a mutual-learning pair; the card covers single networks")
    model, outputs = _build(arch, task, state, meta)
    pre = meta.get("preprocessing", {})
    h, w = height or pre.get("height", 256), width or pre.get("width", 128)
    cost = count_complexity(
        model, h, w, exclude=("head",) if task == "attributes" else ("classifier",)
    )
    run = ckpt.parent if ckpt is not None and ckpt != path else path
    config = meta.get("config")
    if config is None and (run / "config.json").is_file():
        config = json.loads((run / "config.json").read_text())
    record = meta.get("log", {})
    if not any(k in record for k in EVAL_KEYS) and (run / "metrics.json").is_file():
        record = json.loads((run / "metrics.json").read_text())
    metrics = {k: v for k, v in record.items() if k in EVAL_KEYS or k.startswith("model1_")}
    return ModelCard(
        source=str(path),
        arch=arch,
        arch_from=arch_from,
        task=task,
        outputs=outputs,
        params=cost.params,
        params_total=sum(p.numel() for p in model.parameters()),
        mult_adds=cost.mult_adds,
        height=h,
        width=w,
        epoch=meta.get("epoch"),
        attributes=list(meta.get("attributes", [])),
        preprocessing=pre,
        config=config,
        metrics=metrics,
    )


def format_card(card: ModelCard) -> str:
    """The card as text."""
    head = "identities" if card.task == "reid" else "attributes"
    lines = [
        f"model card: {card.source}",
        f"  architecture   {card.arch} (from {card.arch_from})",
        f"  task           {card.task}, {card.outputs} {head}"
        + (f": {', '.join(card.attributes)}" if card.attributes else ""),
        f"  parameters     {card.params / 1e6:.3f}M without the "
        f"{'classifier' if card.task == 'reid' else 'attribute head'} "
        f"({card.params_total / 1e6:.3f}M with it)",
        f"  mult-adds      {card.mult_adds / 1e6:.1f}M at {card.height}x{card.width}",
    ]
    if card.epoch is not None:
        lines.append(f"  epoch          {card.epoch}")
    if card.preprocessing:
        p = card.preprocessing
        lines.append(
            f"  preprocessing  {p.get('height')}x{p.get('width')} "
            f"mean {p.get('mean')} std {p.get('std')}"
        )
    if card.metrics:
        lines.append(
            "  evaluation     " + "  ".join(f"{k} {v:.2f}" for k, v in card.metrics.items())
        )
    else:
        lines.append("  evaluation     (none stored with the checkpoint)")
    if card.config:
        lines.append("  training config:")
        for section, values in card.config.items():
            text = (
                ", ".join(f"{k}={v}" for k, v in values.items())
                if isinstance(values, dict)
                else values
            )
            lines.append(f"    {section}: {text}")
    else:
        lines.append("  training config (none stored with the checkpoint)")
    return "\n".join(lines)
