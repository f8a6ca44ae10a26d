"""One loader for inference: weights in any form -> a model with its ``ModelSpec`` attached.

``load_for_inference`` is what every command and ``FeatureExtractor`` use to turn a weights
argument into an eval-mode model. It accepts a training run folder (its latest checkpoint), a
checkpoint folder, a weights file (``.pt``/``.pth``/``.safetensors``, the reference's
included), or ``zoo:NAME`` (a model shipped with the package, ``models.zoo``). From an
omnireid checkpoint it reads the spec stored beside the weights (``models.spec``: either
format); for a plain file it infers the architecture from the tensor names and shapes and uses
the default preprocessing (256x128, ImageNet statistics). Arguments only override: one that
contradicts a stored value is used, with a warning. The model comes back with ``model.spec``,
the spec completed (architecture, options, classifier and embedding size, the weights file's
SHA-256, the preprocessing in use), so that every layer above passes it on unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from torch import nn

from omnireid.errors import CheckpointError
from omnireid.models.attributes import AttributeNet, build_attribute_model
from omnireid.models.mutual import MutualPair
from omnireid.models.osnet import WIDTHS, OSNet
from omnireid.models.registry import build, list_models
from omnireid.models.spec import ModelSpec, file_sha256, load_spec
from omnireid.models.weights import (
    StateDict,
    check_tensors,
    load_weights,
    read_state_dict,
    to_native_layout,
)
from omnireid.models.zoo import ZOO_PREFIX, expand_zoo
from omnireid.preprocessing import Preprocessing
from omnireid.rundir import CheckpointDir, checkpoint_folder

log = logging.getLogger(__name__)


@dataclass
class WeightsInfo:
    """What a weights argument holds, before a model is built."""

    source: Path  # as given
    file: Path  # the tensor file read
    folder: Path | None  # the checkpoint folder, when it is an omnireid checkpoint
    state: StateDict
    stored: ModelSpec | None = None  # the spec stored with the weights (None: a plain file)
    arch: str = ""
    arch_from: str = ""  # "checkpoint", "tensor shapes" or "argument"
    task: str = "reid"  # "reid", "attributes", "classify" or "nas"

    @property
    def preprocessing(self) -> Preprocessing:
        """The stored preprocessing, else the default one."""
        stored = self.stored.preprocessing if self.stored is not None else None
        return stored or Preprocessing()

    @property
    def spec(self) -> ModelSpec:
        """The spec as far as it is known before a model is built: the stored one with the
        architecture and task decided here and the preprocessing filled in."""
        base = self.stored if self.stored is not None else ModelSpec(arch=self.arch)
        return replace(base, arch=self.arch, task=self.task, preprocessing=self.preprocessing)


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
    """The one architecture whose tensor names and shapes equal ``state``'s (any classifier
    size, or none)."""
    state = to_native_layout(state)
    if "fc.0.weight" not in state:
        raise CheckpointError("cannot infer the architecture: no fc tensors; give arch")
    classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else 0
    options = _shape_options(state, {})
    stem = state["conv1.conv.weight"].shape[0] if "conv1.conv.weight" in state else None

    def candidate(name: str) -> nn.Module:
        model = build(name, num_classes=max(classes, 1), **options)
        if not classes:
            model.reset_classifier(0)
        return model

    found = [
        name
        for name in list_models()
        if _stem_width(name) in (None, stem)  # skip building what cannot match
        and _shapes_match(candidate(name), state)
    ]
    if len(found) != 1:
        what = f"several architectures ({found})" if found else "no known architecture"
        raise CheckpointError(f"the tensors match {what}; give the architecture (--arch)")
    return found[0]


def _backbone_state(state: StateDict) -> StateDict:
    """An attribute model's backbone tensors (its classifier is the attribute head)."""
    return {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}


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
            f"folder (with {CheckpointDir.MODEL})"
        )
    stored = load_spec(folder.path) if folder is not None else None
    file = folder.model if folder is not None else source
    state = read_state_dict(file)
    task = stored.task if stored is not None else "reid"
    if task == "reid" and "head.weight" in state:  # the tensors tell the two kinds apart
        task = "attributes"
    info = WeightsInfo(source, file, None if folder is None else folder.path, state, stored)
    info.task = task
    recorded = stored.arch if stored is not None else ""
    if arch is not None:
        if recorded and recorded != arch:
            log.warning("%s was trained as %s; building %s as asked", source, recorded, arch)
        info.arch, info.arch_from = arch, "argument"
    elif recorded:
        info.arch, info.arch_from = recorded, "checkpoint"
    else:
        backbone = _backbone_state(state) if task == "attributes" else state
        info.arch, info.arch_from = infer_arch(backbone), "tensor shapes"
    return info


def _check_digest(info: WeightsInfo) -> str:
    """The SHA-256 of ``info``'s weights file, refused when its stored spec names another."""
    digest = file_sha256(info.file)
    stored = info.stored.weights_sha256 if info.stored is not None else ""
    if stored and stored != digest:
        raise CheckpointError(
            f"{info.file} is not the weights file its spec describes (SHA-256 mismatch): "
            "changed or damaged since it was saved"
        )
    return digest


def build_for(
    info: WeightsInfo, num_classes: int | None = None, **options: Any
) -> AttributeNet | MutualPair | OSNet:
    """The eval-mode model ``info``'s tensors load into (strictly; any classifier size), with
    its completed spec as ``model.spec``."""
    state = info.state
    spec = info.spec
    model: AttributeNet | MutualPair | OSNet
    if info.task == "attributes":
        n = state["head.weight"].shape[0]
        model = build_attribute_model(info.arch, n, feature_dim=state["head.weight"].shape[1])
        check_tensors(state, model.state_dict(), info.source)
        model.load_state_dict(state, strict=True)
        spec = replace(spec, num_classes=n, feature_dim=model.backbone.feature_dim)
    elif spec.mutual:
        halves: list[OSNet] = []
        for prefix in ("model1.", "model2."):
            half = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            halves.append(_reid_model(info, half, num_classes, options))
        model = MutualPair(halves[0], halves[1])
        spec = _built_spec(spec, halves[0], options, model.feature_dim)
    else:
        model = _reid_model(info, state, num_classes, options)
        spec = _built_spec(spec, model, options, model.feature_dim)
    model.spec = replace(spec, weights_sha256=_check_digest(info))
    return model.eval()


def _built_spec(spec: ModelSpec, network: OSNet, options: dict, dim: int) -> ModelSpec:
    """``spec`` with what building told: the options used, classifier and embedding size."""
    used = {**spec.options, **options}
    embedding = cast(nn.Linear, network.fc[0])
    if embedding.out_features != 512 or "feature_dim" in used:
        used["feature_dim"] = embedding.out_features
    if network.bnneck is not None:
        used["bnneck"] = True
    return replace(spec, options=used, num_classes=network.num_classes, feature_dim=dim)


def _reid_model(
    info: WeightsInfo, state: StateDict, num_classes: int | None, options: dict[str, Any]
) -> OSNet:
    state = to_native_layout(state)
    stored = info.stored.options if info.stored is not None else {}
    options = {**stored, **options}  # how it was built
    options.update(_shape_options(state, options))
    has_classifier = "classifier.weight" in state
    classes = state["classifier.weight"].shape[0] if has_classifier else 1
    model = build(info.arch, num_classes=classes if num_classes is None else num_classes, **options)
    if not has_classifier:  # features need no classifier: the model has none while loading
        model.reset_classifier(0)
    try:
        load_weights(model, state)
    except CheckpointError as e:
        raise CheckpointError(f"{info.source}: {e}") from e
    if not has_classifier and num_classes:
        model.reset_classifier(num_classes)
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
    """``(eval-mode model, preprocessing)`` for ``weights`` (module docstring); the model
    carries its completed ``ModelSpec`` as ``model.spec`` (with the preprocessing returned).

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
    stored = info.stored is not None and info.stored.preprocessing is not None
    pre = override_size(info.preprocessing, height, width, stored=stored, source=weights)
    assert model.spec is not None  # build_for attaches it
    model.spec = replace(model.spec, preprocessing=pre)
    return model, pre


def load_pretrained(name: str, **options: Any) -> tuple[nn.Module, Preprocessing]:
    """``(model, preprocessing)`` of zoo model ``name`` (``load_for_inference``'s options);
    ``model.spec`` is the entry's spec."""
    return load_for_inference(f"{ZOO_PREFIX}{name}", **options)


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
    if stored and new.input_size != preprocessing.input_size:
        log.warning(
            "%s was trained at %dx%d; using %dx%d as asked",
            source,
            *preprocessing.input_size,
            *new.input_size,
        )
    return new
