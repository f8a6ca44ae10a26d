"""Model card: what a checkpoint is, what it costs, how it was trained and how it scored.

``read_card(path)`` accepts what ``models.load_for_inference`` accepts: a training run folder,
one checkpoint folder, a plain weights file (``.pt``/``.pth``/``.safetensors``, e.g. the
reference's) or ``zoo:NAME``. What the card says comes from the model's ``ModelSpec`` (for a
plain file: the architecture inferred from the tensor names and shapes, or given as ``arch``),
the cost from counting the built model; a spec without the training config or the evaluation
(format 1 kept both) falls back on the run folder's ``config.json`` and ``metrics.json``. The
weights are loaded into the built model, so a card is only printed for a checkpoint that
really fits it. For a mutual-learning pair the card describes one network.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from omnireid.models.complexity import count_complexity
from omnireid.models.loader import build_for, read_weights
from omnireid.models.mutual import MutualPair
from omnireid.models.spec import ModelSpec
from omnireid.rundir import RunDir
from omnireid.scores import RANK_KEYS

# what a card shows of a record: the ranking scores ("rank20": earlier code's records), the
# attribute and classification scores
EVAL_KEYS: tuple[str, ...] = (*RANK_KEYS, "rank20")
EVAL_KEYS += ("mA", "accuracy", "precision", "recall", "f1", "error")


@dataclass
class ModelCard:
    """A model's spec (what it is: ``ModelSpec``, the one description every layer passes on)
    and what the card adds: where the architecture came from, the cost of the built network at
    ``height x width``, the training config and the evaluation. The spec's fields a card shows
    are read from it (properties), never copied."""

    source: str
    spec: ModelSpec
    arch_from: str  # "checkpoint", "tensor shapes" or "argument"
    params: int  # classifier / attribute head excluded (the papers' convention)
    params_total: int
    mult_adds: int
    height: int
    width: int
    preprocessing_stored: bool = False  # False: a plain file, the default preprocessing
    config: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.spec.arch + (" (mutual-learning pair)" if self.spec.mutual else "")

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def outputs(self) -> int:
        """Identities or classes of the classifier, or attributes."""
        return int(self.spec.num_classes or 0)

    @property
    def epoch(self) -> int | None:
        return self.spec.epoch

    @property
    def attributes(self) -> list[str]:
        return list(self.spec.labels) if self.task == "attributes" else []

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The stored preprocessing as JSON data; empty when none was stored."""
        pre = self.spec.preprocessing
        return pre.to_meta() if self.preprocessing_stored and pre is not None else {}

    @property
    def adapted_from(self) -> dict[str, Any] | None:
        """An ``omnireid adapt`` result's source weights (path, SHA-256, method: "" for the
        full self-training, "adabn")."""
        origin = self.spec.provenance.adapted_from
        return None if origin is None else asdict(origin)

    @property
    def trained_on(self) -> str:
        return self.spec.provenance.trained_on

    @property
    def weights_sha256(self) -> str:
        return self.spec.weights_sha256

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON data: the spec as ``ModelSpec.to_dict`` writes it."""
        fields = {k: v for k, v in asdict(self).items() if k != "spec"}
        return {**fields, "spec": self.spec.to_dict()}


def _run_of(source: Path, folder: Path | None) -> RunDir:
    """The run folder of a weights argument: the parent of the checkpoint it resolved to, else
    the argument itself (a checkpoint folder or a plain file: no run files beside it)."""
    return RunDir(folder.parent if folder is not None and folder != source else source)


def read_card(
    path: str | Path, arch: str | None = None, height: int | None = None, width: int | None = None
) -> ModelCard:
    """The card of a run folder, checkpoint folder or weights file (see the module docstring).

    ``height``/``width`` (default: the checkpoint's preprocessing, else 256x128) set the input
    size of the mult-add count.
    """
    info = read_weights(path, arch)
    model = build_for(info)
    spec = cast(ModelSpec, model.spec)  # build_for attaches it
    stored = info.stored.preprocessing if info.stored is not None else None  # None: default
    network = model.model1 if isinstance(model, MutualPair) else model
    exclude = ("head",) if info.task == "attributes" else ("classifier",)
    h, w = height or spec.input_size[0], width or spec.input_size[1]
    cost = count_complexity(network, h, w, exclude=exclude)
    run = _run_of(info.source, info.folder)
    config = spec.config
    if config is None and run.config.is_file():
        config = json.loads(run.config.read_text())
    record = spec.record
    if not any(k in record for k in EVAL_KEYS) and run.metrics.is_file():
        record = json.loads(run.metrics.read_text())
    metrics = {k: v for k, v in record.items() if k in EVAL_KEYS or k.startswith("model1_")}
    return ModelCard(
        source=str(path),
        spec=spec,
        arch_from=info.arch_from,
        params=cost.params,
        params_total=sum(p.numel() for p in network.parameters()),
        mult_adds=cost.mult_adds,
        height=h,
        width=w,
        preprocessing_stored=stored is not None,
        config=config,
        metrics=metrics,
    )


def format_card(card: ModelCard) -> str:
    """The card as text."""
    head = {"reid": "identities", "classify": "classes"}.get(card.task, "attributes")
    lines = [
        f"model card: {card.source}",
        f"  architecture   {card.arch} (from {card.arch_from})",
        f"  task           {card.task}, {card.outputs} {head}"
        + (f": {', '.join(card.attributes)}" if card.attributes else ""),
        f"  parameters     {card.params / 1e6:.3f}M without the "
        f"{'attribute head' if card.task == 'attributes' else 'classifier'} "
        f"({card.params_total / 1e6:.3f}M with it)",
        f"  mult-adds      {card.mult_adds / 1e6:.1f}M at {card.height}x{card.width}",
    ]
    if card.epoch is not None:
        lines.append(f"  epoch          {card.epoch}")
    if card.trained_on:
        lines.append(f"  trained on     {card.trained_on}")
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


__all__ = ["ModelCard", "format_card", "read_card"]
