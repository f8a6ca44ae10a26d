"""Model card: what a checkpoint is, what it costs, how it was trained and how it scored.

``read_card(path)`` accepts what ``models.load_for_inference`` accepts: a training run folder
(``config.json``, ``metrics.json``, ``latest`` -> ``epoch-XXXX/{model.safetensors,
meta.json}``), one checkpoint folder, or a plain weights file (``.pt``/``.pth``/
``.safetensors``, e.g. the reference's). The architecture comes from the checkpoint's
``meta.json``; for a plain file it is inferred from the tensor names and shapes (or given as
``arch``). The weights are loaded into the built model, so a card is only printed for a
checkpoint that really fits it. For a mutual-learning pair the card describes one network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnireid.models.complexity import count_complexity
from omnireid.models.loader import build_for, read_weights
from omnireid.models.mutual import MutualPair

EVAL_KEYS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "mA", "accuracy", "precision")
EVAL_KEYS += ("recall", "f1")


@dataclass
class ModelCard:
    source: str
    arch: str
    arch_from: str  # "checkpoint", "tensor shapes" or "argument"
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
    # an ``omnireid adapt`` result: the source weights (path, SHA-256, method when not the
    # full self-training)
    adapted_from: dict[str, Any] | None = None


def read_card(
    path: str | Path, arch: str | None = None, height: int | None = None, width: int | None = None
) -> ModelCard:
    """The card of a run folder, checkpoint folder or weights file (see the module docstring).

    ``height``/``width`` (default: the checkpoint's preprocessing, else 256x128) set the input
    size of the mult-add count.
    """
    info = read_weights(path, arch)
    model = build_for(info)
    network = model.model1 if isinstance(model, MutualPair) else model
    if info.task == "attributes":
        outputs, exclude = network.num_attributes, ("head",)
    else:
        outputs, exclude = network.classifier.out_features, ("classifier",)
    pre = info.meta.get("preprocessing", {})
    h, w = height or pre.get("height", 256), width or pre.get("width", 128)
    cost = count_complexity(network, h, w, exclude=exclude)
    source = Path(path)
    run = info.folder.parent if info.folder is not None and info.folder != source else source
    config = info.meta.get("config")
    if config is None and (run / "config.json").is_file():
        config = json.loads((run / "config.json").read_text())
    record = info.meta.get("log", {})
    if not any(k in record for k in EVAL_KEYS) and (run / "metrics.json").is_file():
        record = json.loads((run / "metrics.json").read_text())
    metrics = {k: v for k, v in record.items() if k in EVAL_KEYS or k.startswith("model1_")}
    return ModelCard(
        source=str(path),
        arch=info.arch + (" (mutual-learning pair)" if isinstance(model, MutualPair) else ""),
        arch_from=info.arch_from,
        task=info.task,
        outputs=outputs,
        params=cost.params,
        params_total=sum(p.numel() for p in network.parameters()),
        mult_adds=cost.mult_adds,
        height=h,
        width=w,
        epoch=info.meta.get("epoch"),
        attributes=list(info.meta.get("attributes", [])),
        preprocessing=pre,
        config=config,
        metrics=metrics,
        adapted_from=info.meta.get("adapted_from"),
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
    if card.adapted_from:
        a = card.adapted_from
        how = "AdaBN only" if a.get("method") == "adabn" else "omnireid adapt, without labels"
        lines.append(
            f"  adapted from   {a.get('path')} (sha256 {str(a.get('sha256'))[:12]}..., {how})"
        )
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
