"""One loader for inference: weights in any form -> ``(model, preprocessing)``.

``load_for_inference`` is what every command and ``FeatureExtractor`` use to turn a weights
argument into an eval-mode model. It accepts a training run folder (its latest checkpoint), a
checkpoint folder, a weights file (``.pt``/``.pth``/``.safetensors``, the reference's
included), or ``zoo:NAME`` (a model shipped with the package, ``models.zoo``). From an
omnireid checkpoint it reads the architecture, the task, and the
preprocessing stored in ``meta.json``; for a plain file it infers the architecture from the
tensor names and shapes and uses the default preprocessing (256x128, ImageNet statistics).
Arguments only override: one that contradicts a stored value is used, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omnireid.errors import CheckpointError
from omnireid.models.attributes import build_attribute_model
from omnireid.models.mutual import MutualPair
from omnireid.models.osnet import WIDTHS
from omnireid.models.registry import build, list_models
from omnireid.models.weights import (
    MODEL_FILE,
    StateDict,
    check_tensors,
    checkpoint_folder,
    expand_zoo,
    load_weights,
    read_meta,
    read_state_dict,
    to_native_layout,
)
from omnireid.preprocessing import Preprocessing

log = logging.getLogger(__name__)


@dataclass
class WeightsInfo:
    """What a weights argument holds, before a model is built."""

    source: Path  # as given
    file: Path  # the tensor file read
    folder: Path | None  # the checkpoint folder, when it is an omnireid checkpoint
    state: StateDict
    meta: dict[str, Any] = field(default_factory=dict)
    arch: str = ""
    arch_from: str = ""  # "checkpoint", "tensor shapes" or "argument"
    task: str = "reid"  # "reid" or "attributes"

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_meta(self.meta.get("preprocessing"))


def _shapes_match(model: nn.Module, state: StateDict) -> bool:
    own = {k: v.shape for k, v in model.state_dict().items() if not k.endswith("batches_tracked")}
    theirs = {k: v.shape for k, v in state.items() if not k.endswith("batches_tracked")}
    return own == theirs


def _stem_width(name: str) -> int | None:
    """conv1 width of a builder named ``..._x<beta>`` (None when the name does not say)."""
    widths = WIDTHS.get("x" + name.rsplit("_x", 1)[-1])
    return widths[0] if widths else None


def _shape_options(state: StateDict, given: dict[str, Any]) -> dict[str, Any]:
    """Builder options the tensors themselves fix: the embedding size and a BNNeck."""
    found: dict[str, Any] = {}
    if "fc.0.weight" in state and "feature_dim" not in given:
        found["feature_dim"] = state["fc.0.weight"].shape[0]
    if "bnneck.weight" in state and "bnneck" not in given:
        found["bnneck"] = True
    return found


def infer_arch(state: StateDict) -> str:
    """The one architecture whose tensor names and shapes equal ``state``'s (any classifier)."""
    state = to_native_layout(state)
    if "classifier.weight" not in state or "fc.0.weight" not in state:
        raise CheckpointError("cannot infer the architecture: no classifier/fc tensors; give arch")
    classes = state["classifier.weight"].shape[0]
    options = _shape_options(state, {})
    stem = state["conv1.conv.weight"].shape[0] if "conv1.conv.weight" in state else None
    found = [
        name
        for name in list_models()
        if _stem_width(name) in (None, stem)  # skip building what cannot match
        and _shapes_match(build(name, num_classes=classes, **options), state)
    ]
    if len(found) != 1:
        what = f"several architectures ({found})" if found else "no known architecture"
        raise CheckpointError(f"the tensors match {what}; give the architecture (--arch)")
    return found[0]


def _backbone_state(state: StateDict) -> StateDict:
    """An attribute model's backbone tensors, with a stand-in classifier for ``infer_arch``."""
    backbone = {
        k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")
    }
    dim = backbone["fc.0.weight"].shape[0] if "fc.0.weight" in backbone else 1
    backbone["classifier.weight"] = torch.zeros(1, dim)
    backbone["classifier.bias"] = torch.zeros(1)
    return backbone


def read_weights(weights: str | Path, arch: str | None = None) -> WeightsInfo:
    """Read ``weights`` (see the module docstring) and decide its architecture: ``arch`` when
    given (a warning if the checkpoint says otherwise), else the stored or inferred one."""
    source = expand_zoo(weights)
    if not source.exists():
        raise CheckpointError(f"weights not found: {source}")
    folder = checkpoint_folder(source)
    if source.is_dir() and folder is None:
        raise CheckpointError(
            f"{source} is neither a run folder (with a 'latest' checkpoint) nor a checkpoint "
            f"folder (with {MODEL_FILE})"
        )
    meta = read_meta(folder) if folder is not None else {}
    file = folder / MODEL_FILE if folder is not None else source
    state = read_state_dict(file)
    task = meta.get("task", "attributes" if "head.weight" in state else "reid")
    info = WeightsInfo(source, file, folder, state, meta, task=task)
    stored = meta.get("arch")
    if arch is not None:
        if stored and stored != arch:
            log.warning("%s was trained as %s; building %s as asked", source, stored, arch)
        info.arch, info.arch_from = arch, "argument"
    elif stored:
        info.arch, info.arch_from = stored, "checkpoint"
    else:
        backbone = _backbone_state(state) if task == "attributes" else state
        info.arch, info.arch_from = infer_arch(backbone), "tensor shapes"
    return info


def build_for(info: WeightsInfo, num_classes: int | None = None, **options: Any) -> nn.Module:
    """The eval-mode model ``info``'s tensors load into (strictly; any classifier size)."""
    state = info.state
    if info.task == "attributes":
        n = state["head.weight"].shape[0]
        model = build_attribute_model(info.arch, n, feature_dim=state["head.weight"].shape[1])
        check_tensors(state, model.state_dict(), info.source)
        model.load_state_dict(state, strict=True)
        return model.eval()
    if info.meta.get("mutual"):
        halves = []
        for prefix in ("model1.", "model2."):
            half = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            halves.append(_reid_model(info, half, num_classes, options))
        return MutualPair(*halves).eval()
    return _reid_model(info, state, num_classes, options).eval()


def _reid_model(
    info: WeightsInfo, state: StateDict, num_classes: int | None, options: dict[str, Any]
) -> nn.Module:
    state = to_native_layout(state)
    if num_classes is None:
        num_classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else 1
    options = {**info.meta.get("model_options", {}), **options}  # how it was built
    options.update(_shape_options(state, options))
    model = build(info.arch, num_classes=num_classes, **options)
    if "classifier.weight" not in state:  # features need no classifier: keep the built one
        own = model.state_dict()
        state = {**state, "classifier.weight": own["classifier.weight"]}
        state["classifier.bias"] = own["classifier.bias"]
    try:
        load_weights(model, state)
    except CheckpointError as e:
        raise CheckpointError(f"{info.source}: {e}") from e
    return model


def load_for_inference(
    weights: str | Path | WeightsInfo,
    arch: str | None = None,
    *,
    height: int | None = None,
    width: int | None = None,
    task: str | None = "reid",
    num_classes: int | None = None,
    **options: Any,
) -> tuple[nn.Module, Preprocessing]:
    """``(eval-mode model, preprocessing)`` for ``weights`` (module docstring).

    ``height``/``width`` override the stored input size (with a warning when they differ from
    it). ``task`` is the kind of model the caller needs (``"reid"``: embeddings; ``None``:
    any); another kind raises ``CheckpointError``. ``options`` go to the builder. ``weights``
    may also be ``read_weights``'s result, for a caller that looked at the metadata first.
    """
    info = weights if isinstance(weights, WeightsInfo) else read_weights(weights, arch)
    weights = info.source
    if task is not None and info.task != task:
        raise CheckpointError(f"{weights} holds a model for task {info.task!r}, not {task!r}")
    model = build_for(info, num_classes, **options)
    return model, override_size(
        info.preprocessing, height, width, stored=bool(info.meta), source=weights
    )


def override_size(
    preprocessing: Preprocessing,
    height: int | None,
    width: int | None,
    *,
    stored: bool,
    source: str | Path = "the checkpoint",
) -> Preprocessing:
    """``preprocessing`` with the given size; warns when a stored size is contradicted."""
    new = replace(
        preprocessing,
        height=preprocessing.height if height is None else height,
        width=preprocessing.width if width is None else width,
    )
    if stored and new.size != preprocessing.size:
        log.warning(
            "%s was trained at %dx%d; using %dx%d as asked",
            source,
            *preprocessing.size,
            *new.size,
        )
    return new
