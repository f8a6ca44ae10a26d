"""Reading checkpoints, including the reference implementation's (torchreid), into our models.

Two reference layouts exist. ``osnet_ain.py``'s is ours (``conv2.0.conv2.{t}.layers.{j}``,
transitions ``pool2``/``pool3``), so it loads as is. ``osnet.py``'s names the streams
``conv2a``, ``conv2b.{j}``..., keeps the transitions inside the stages (``conv2.2.0.conv``)
and calls the post-residual instance norm ``IN``; ``to_native_layout`` renames those keys.

A weights argument may also be a checkpoint folder, a training run folder (its latest
checkpoint: the layout is ``rundir``'s) or ``zoo:NAME`` (``models.zoo``); ``resolve_weights``
turns each into the tensor file it means.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from omnireid.errors import CheckpointError
from omnireid.models.spec import InitRecord, file_sha256
from omnireid.models.zoo import check_card, expand_zoo
from omnireid.rundir import CheckpointDir, checkpoint_folder

StateDict = dict[str, torch.Tensor]

CLASSIFIER_KEYS = ("classifier.weight", "classifier.bias")
_STREAM_NAMES = {"conv2a": 0, "conv2b": 1, "conv2c": 2, "conv2d": 3}

__all__ = [
    "InitReport",
    "LoadReport",
    "file_sha256",
    "init_from_weights",
    "load_weights",
    "read_state_dict",
    "resolve_weights",
    "to_native_layout",
    "weights_provenance",
]


@dataclass
class LoadReport:
    """What ``load_weights`` did: the keys loaded and the tolerated classifier mismatch."""

    loaded: list[str] = field(default_factory=list)
    skipped_classifier: bool = False


def resolve_weights(path: str | Path) -> Path:
    """A weights file as given; a checkpoint folder -> its ``model.safetensors``; a training run
    folder -> its latest checkpoint's; ``zoo:NAME`` -> the zoo model's."""
    path = expand_zoo(path)
    if not path.is_dir():
        return path
    folder = checkpoint_folder(path)
    if folder is None:
        raise CheckpointError(f"{path} holds no {CheckpointDir.MODEL} and no latest checkpoint")
    return folder.model


def weights_provenance(weights: str | Path) -> dict[str, str]:
    """Where features came from: the weights argument (resolved) and its tensor file's SHA-256."""
    return {"path": str(Path(weights).resolve()), "sha256": file_sha256(resolve_weights(weights))}


def read_state_dict(path: str | Path) -> StateDict:
    """Read a state_dict from a ``.pt``/``.pth`` (any torch format, legacy pre-1.6 included) or
    ``.safetensors`` file, a checkpoint folder, a run folder or a zoo model
    (``resolve_weights``; a zoo model's file must have its card's SHA-256, ``check_card``),
    never unpickling arbitrary objects.

    Unwraps checkpoint dicts that hold ``state_dict`` (or ``model``) and strips a ``module.``
    prefix (DataParallel / DDP).
    """
    path = resolve_weights(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    check_card(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj: object = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {path}: not a valid safetensors file ({e})") from e
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # the unpickler fails on damaged bytes with many error types
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"cannot read {path} as a weights-only torch checkpoint (corrupt, truncated, "
                f"not a checkpoint, or holding arbitrary Python objects, which are not loaded "
                f"for safety): {reason[:300]}"
            ) from e
    return unwrap_state_dict(obj, source=str(path))


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> StateDict:
    """Find the tensor mapping inside a loaded checkpoint and strip ``module.`` prefixes."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source} holds no state_dict (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {bad[:10]}")
    odd = [k for k, v in obj.items() if v.layout != torch.strided or v.is_quantized or v.is_meta]
    if odd:  # no training writes them; shape checks and loading fail on them in odd places
        raise CheckpointError(
            f"{source}: tensors that are not plain dense ones (sparse, quantized or without "
            f"data): {odd[:10]}"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def is_reference_osnet_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for the reference ``osnet.py`` layout (streams named ``conv2a``...)."""
    return any(".conv2a." in k for k in state_dict)


def _rename_reference_key(key: str) -> str:
    m = re.match(r"^(conv[234]\.\d+)\.(conv2[abcd])\.(?:(\d+)\.)?(.*)$", key)
    if m:
        block, stream, layer, rest = m.groups()
        return f"{block}.conv2.{_STREAM_NAMES[stream]}.layers.{layer or 0}.{rest}"
    m = re.match(r"^conv([23])\.\d+\.0\.(.*)$", key)  # transition inside the stage
    if m:
        return f"pool{m.group(1)}.0.{m.group(2)}"
    m = re.match(r"^(conv[234]\.\d+)\.IN\.(.*)$", key)  # IN after the residual addition
    if m:
        return f"{m.group(1)}.IN_out.{m.group(2)}"
    return key


def to_native_layout(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename a reference ``osnet.py`` state_dict to our layout; other layouts pass unchanged."""
    if not is_reference_osnet_layout(state_dict):
        return dict(state_dict)
    return {_rename_reference_key(k): v for k, v in state_dict.items()}


def mismatch_summary(
    name: object, model: nn.Module, missing: list, unexpected: list, wrong_shape: list
) -> str:
    """A short account of why a checkpoint does not fit: counts, a few keys each, a cause."""

    def few(keys: list) -> str:
        more = f", ... ({len(keys) - 3} more)" if len(keys) > 3 else ""
        return ", ".join(str(k) for k in keys[:3]) + more

    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {few(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {few(unexpected)}")
    if wrong_shape:
        parts.append(f"shape mismatches ({len(wrong_shape)}): {few(wrong_shape)}")
    arch = getattr(model, "arch", None) or type(model).__name__
    return (
        f"{name} does not match {arch}: " + "; ".join(parts) + " (is the architecture right? "
        "the checkpoint may be another width, an IN/AIN variant, or not an OSNet)"
    )


def check_tensors(
    state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], source: object
) -> None:
    """Refuse tensors no training writes, before any is loaded (``CheckpointError`` naming
    ``source``): an integer, bool or complex tensor where the model ``own`` has floating point
    (``load_state_dict`` would cast it silently), NaN or infinite values, a negative BatchNorm
    running variance (``sqrt`` of it is NaN)."""

    def few(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f", ... ({len(keys) - 3} more)" if len(keys) > 3 else "")

    wrong_kind = [
        f"{k} ({str(v.dtype).removeprefix('torch.')})"
        for k, v in state.items()
        if k in own and own[k].is_floating_point() and not v.is_floating_point()
    ]
    if wrong_kind:
        raise CheckpointError(
            f"{source}: {len(wrong_kind)} tensor(s) of an integer or bool (or complex) dtype where "
            f"the model has floating point, e.g. {few(wrong_kind)}: not the weights of this kind "
            "of model, and not loaded (a cast would give other weights)"
        )
    damaged = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if damaged:
        raise CheckpointError(
            f"{source} holds NaN or infinite values in {len(damaged)} tensor(s), e.g. "
            f"{few(damaged)}: the weights are damaged (a run that diverged?) and are not loaded"
        )
    negative = [
        k
        for k, v in state.items()
        if k.endswith("running_var") and v.is_floating_point() and bool((v < 0).any())
    ]
    if negative:
        raise CheckpointError(
            f"{source} holds negative BatchNorm variances in {len(negative)} tensor(s), e.g. "
            f"{few(negative)}: the weights are damaged and are not loaded"
        )


def load_weights(model: nn.Module, source: str | Path | Mapping[str, torch.Tensor]) -> LoadReport:
    """Load a checkpoint (path or state_dict, either reference layout or ours) into ``model``.

    Every key must match in name and shape, and pass ``check_tensors`` (finite, floating point
    where the model is, no negative BatchNorm variance). The one tolerated difference is a
    classifier of another size (weights trained on other identities): it is left as
    initialised, with a warning. Anything else raises ``CheckpointError`` listing the
    offending keys.
    """
    raw = read_state_dict(source) if isinstance(source, str | Path) else unwrap_state_dict(source)
    state = to_native_layout(raw)
    own = model.state_dict()
    check_tensors(state, own, source if isinstance(source, str | Path) else "state_dict")
    # Checkpoints from torch < 0.4.1 have no BN batch counters; they carry no information.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape and k not in CLASSIFIER_KEYS
    ]
    if missing or unexpected or wrong_shape:
        name = source if isinstance(source, str | Path) else "state_dict"
        raise CheckpointError(mismatch_summary(name, model, missing, unexpected, wrong_shape))
    report = LoadReport()
    mismatched = [k for k in CLASSIFIER_KEYS if k in own and state[k].shape != own[k].shape]
    if mismatched:
        warnings.warn(
            f"classifier size differs (checkpoint {tuple(state['classifier.weight'].shape)}, "
            f"model {tuple(own['classifier.weight'].shape)}): the classifier keeps its "
            "initialisation; the feature extractor is loaded",
            stacklevel=2,
        )
        state = {k: v for k, v in state.items() if k not in CLASSIFIER_KEYS}
        report.skipped_classifier = True
    result = model.load_state_dict(state, strict=not mismatched)
    leftover = [k for k in result.missing_keys if k not in CLASSIFIER_KEYS]
    leftover = [k for k in leftover if not k.endswith("num_batches_tracked")]
    if leftover or result.unexpected_keys:  # pragma: no cover - guarded by the checks above
        raise CheckpointError(f"incomplete load: {leftover} {result.unexpected_keys}")
    report.loaded = sorted(state)
    return report


# Starting a model from another network's weights (ImageNet pre-training, a related variant)
MIN_LOADED_SHARE = 0.9  # model.min_loaded_share's default: refuse a start that loads less


@dataclass(frozen=True)
class InitReport:
    """What ``init_from_weights`` copied into a model and what it left as initialised.

    ``loaded``: model tensors copied (name and shape matched); ``fresh``: model tensors left as
    initialised; ``unused``: checkpoint tensors that found no tensor of the same name and shape.
    ``share``: the fraction of the backbone's elements (every tensor but the classifier and the
    BN batch counters) that were copied.
    """

    source: str
    sha256: str
    loaded: tuple[str, ...]
    fresh: tuple[str, ...]
    unused: tuple[str, ...]
    share: float

    @staticmethod
    def groups(keys: tuple[str, ...]) -> dict[str, int]:
        """Tensor counts per module (``conv2.0.IN.weight`` -> ``conv2.0.IN``), in key order."""
        counts: dict[str, int] = {}
        for key in keys:
            module = key.rsplit(".", 1)[0]
            counts[module] = counts.get(module, 0) + 1
        return counts

    def record(self) -> InitRecord:
        """The record a run's spec keeps of it (``ModelSpec.provenance.init``)."""
        return InitRecord(
            weights=self.source,
            sha256=self.sha256,
            loaded=len(self.loaded),
            fresh=len(self.fresh),
            unused=len(self.unused),
            backbone_share=round(self.share, 6),
            fresh_groups=self.groups(self.fresh),
            unused_groups=self.groups(self.unused),
        )

    def summary(self) -> str:
        """One line for the log: counts, the share and the groups that did not load."""

        def names(keys: tuple[str, ...]) -> str:
            groups = list(self.groups(keys))
            more = f", ... ({len(groups) - 6} more)" if len(groups) > 6 else ""
            return ", ".join(groups[:6]) + more if groups else "none"

        return (
            f"started from {self.source}: {len(self.loaded)} tensors loaded "
            f"({self.share:.1%} of the backbone), {len(self.fresh)} fresh [{names(self.fresh)}], "
            f"{len(self.unused)} in the file unused [{names(self.unused)}]"
        )


def _counted(key: str) -> bool:
    """Whether a tensor counts towards the backbone share (not the classifier or BN counters)."""
    return not key.endswith("num_batches_tracked") and key not in CLASSIFIER_KEYS


def init_from_weights(
    model: nn.Module, source: str | Path, *, min_share: float = MIN_LOADED_SHARE
) -> InitReport:
    """Start ``model`` from another network's weights by a partial load.

    Every tensor of ``source`` (any layout ``read_state_dict`` reads) whose name and shape
    equal one of the model's is copied; the rest of the model keeps its initialisation (new
    instance-norm layers, a classifier for other identities). Nothing is loaded, and
    ``CheckpointError`` names the file and the share, when less than ``min_share`` of the
    backbone's elements would load (another width, not an OSNet); also when a tensor to copy
    is not finite, or an integer/bool tensor would replace a floating-point one.
    """
    state = to_native_layout(read_state_dict(source))
    own = model.state_dict()
    copy = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    check_tensors(copy, own, source)
    total = sum(v.numel() for k, v in own.items() if _counted(k))
    share = sum(own[k].numel() for k in copy if _counted(k)) / max(total, 1)
    if share < min_share:
        raise CheckpointError(
            f"{source} fits only {share:.1%} of {getattr(model, 'arch', None) or 'the model'}'s "
            f"backbone (name and shape), below the {min_share:.0%} required "
            "(model.min_loaded_share): another width or architecture? Set "
            "model.min_loaded_share lower to start from it anyway"
        )
    model.load_state_dict(copy, strict=False)
    fresh = tuple(k for k in own if k not in copy and not k.endswith("num_batches_tracked"))
    return InitReport(
        source=str(source),
        sha256=file_sha256(resolve_weights(source)),
        loaded=tuple(k for k in own if k in copy),
        fresh=fresh,
        unused=tuple(k for k in state if k not in copy),
        share=share,
    )
