"""One description of a model: ``ModelSpec``, typed, versioned, read and written only here.

A spec says what a set of weights is and how to feed it: the architecture and its builder
options, the task and classifier size, the embedding size, the preprocessing (input size
once, channel order, value range, mean/std, resize, output norm: ``Preprocessing``), the
SHA-256 of the weights file, and where the weights came from (the data they were trained on,
the model they were adapted from, the weights a run started from). A training run writes one
into every checkpoint folder (``meta.json``, ``rundir.CheckpointDir.SPEC``), the zoo ships one
per model, and ``models.load_for_inference`` returns the model with its spec attached
(``model.spec``), as timm's ``pretrained_cfg`` and torchvision's ``Weights.meta`` travel with
their models. Every layer above passes it on unchanged instead of re-reading the file.

Format 2 is this module's JSON (``ModelSpec.to_dict``). Format 1 is the untyped ``meta.json``
every checkpoint held before (no version field; the zoo's entries, and runs of earlier code):
``migrate_v1`` turns it into format 2 when it is read, so every old run folder and zoo entry
still loads. A file of a newer format is refused rather than half-read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from omnireid.errors import JSON_ERRORS, CheckpointError
from omnireid.preprocessing import Preprocessing
from omnireid.rundir import CheckpointDir

FORMAT_VERSION = 2  # 1: the unversioned meta.json before the spec
TASKS = ("reid", "attributes", "classify", "nas")
ADAPTATION_METHODS = ("", "adabn")  # "": the full self-training (omnireid adapt)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class InitRecord:
    """What a run that started from other weights loaded (``models.weights.InitReport``):
    the file and its SHA-256, tensor counts, the share of the backbone's elements copied, and
    the modules left fresh or unused (tensor counts per module)."""

    weights: str
    sha256: str
    loaded: int
    fresh: int
    unused: int
    backbone_share: float
    fresh_groups: dict[str, int] = field(default_factory=dict)
    unused_groups: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceWeights:
    """The model an adapted one started from: its weights path, their SHA-256, and the method
    (``""``: clustering self-training, ``"adabn"``: BatchNorm statistics only)."""

    path: str
    sha256: str
    method: str = ""

    def __post_init__(self) -> None:
        if self.method not in ADAPTATION_METHODS:
            raise CheckpointError(f"adapted_from.method must be one of {ADAPTATION_METHODS}")


@dataclass(frozen=True)
class Split:
    """The random split of a multi-split benchmark (VIPeR, GRID, CUHK01) a model was trained
    and tested on."""

    dataset: str
    split_id: int


@dataclass(frozen=True)
class Provenance:
    """Where weights came from: the training data, and the weights they started from."""

    trained_on: str = ""  # dataset name(s) joined by "+", or the folder/CSV adapted on
    adapted_from: SourceWeights | None = None
    init: InitRecord | None = None
    split: Split | None = None


@dataclass(frozen=True)
class ModelSpec:
    """What a set of weights is and how to feed it (module docstring).

    ``arch`` is a registry name (``models.list_models()``), a child-architecture JSON path,
    or ``search:NAME`` for an IN-search supernet; ``""`` when a format-1 checkpoint did not
    record it (the loader then infers it from the tensors). ``num_classes``: the classifier's
    outputs (identities, classes or attributes); ``feature_dim``: the size of the features the
    model returns in eval mode. ``labels``: class or attribute names; ``label_priors``: each
    attribute's positive share in training. ``preprocessing`` is None only in a spec read from
    a format-1 checkpoint that did not store one; every spec attached to a model has it.
    ``epoch``, ``record`` (the epoch's log record, with its evaluation) and ``config`` (the
    training config as plain data) say where in which run the weights were saved.
    """

    arch: str
    task: str = "reid"
    options: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    feature_dim: int = 512
    mutual: bool = False
    labels: tuple[str, ...] = ()
    label_priors: tuple[float, ...] = ()
    preprocessing: Preprocessing | None = None
    weights_sha256: str = ""
    provenance: Provenance = field(default_factory=Provenance)
    epoch: int | None = None
    record: dict[str, Any] = field(default_factory=dict, repr=False)
    config: dict[str, Any] | None = field(default=None, repr=False)
    format_version: ClassVar[int] = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise CheckpointError(f"model spec task must be one of {TASKS}, got {self.task!r}")

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` the weights were trained at (256x128 when not recorded)."""
        return (self.preprocessing or Preprocessing()).input_size

    def to_dict(self) -> dict[str, Any]:
        """Format 2 as plain JSON data."""
        p = self.provenance
        return {
            "format_version": FORMAT_VERSION,
            "arch": self.arch,
            "task": self.task,
            "options": _plain(self.options),
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
            "mutual": self.mutual,
            "labels": list(self.labels),
            "label_priors": list(self.label_priors),
            "preprocessing": None if self.preprocessing is None else self.preprocessing.to_meta(),
            "weights_sha256": self.weights_sha256,
            "provenance": {
                "trained_on": p.trained_on,
                "adapted_from": _record(p.adapted_from),
                "init": _record(p.init),
                "split": _record(p.split),
            },
            "epoch": self.epoch,
            "record": _plain(self.record),
            "config": _plain(self.config),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: object = "model spec") -> ModelSpec:
        """Read format 2, or format 1 (migrated); ``CheckpointError`` naming ``source`` for
        anything else (a newer format, a missing or mistyped field, an unknown key)."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{source}: a model spec is a JSON object")
        if "format_version" not in data:
            data = migrate_v1(data)
        version = data["format_version"]
        if version != FORMAT_VERSION:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            why = "a newer omnireid wrote it: upgrade to read it" if newer else "unknown"
            raise CheckpointError(f"{source}: model spec format {version!r} ({why})")
        return _Reader(data, source).spec()


def _plain(value: Any) -> Any:
    """JSON data (lists for tuples) of ``value``."""
    return json.loads(json.dumps(value))


def _record(value: Any) -> dict[str, Any] | None:
    """A provenance record as JSON data (None stays None)."""
    return None if value is None else _plain(asdict(value))


class _Reader:
    """Format 2 -> ``ModelSpec``, each field's type checked, naming the field when wrong."""

    KEYS = frozenset(ModelSpec(arch="").to_dict())

    def __init__(self, data: Mapping[str, Any], source: object) -> None:
        self.data, self.source = data, source
        unknown = sorted(set(data) - self.KEYS)
        missing = sorted({"arch", "format_version"} - set(data))
        if unknown or missing:
            what = f"unknown keys {unknown}" if unknown else f"no {missing}"
            raise CheckpointError(f"{source}: not a format-{FORMAT_VERSION} model spec ({what})")

    @staticmethod
    def fail(key: str, expected: str, value: Any) -> CheckpointError:
        return CheckpointError(f"model spec {key} must be {expected}, got {value!r}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, where=None):
        data = self.data if where is None else where
        value = data.get(key, default)
        if value is None and default is None:
            return None
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if not ok:
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(key, names, value)
        return value

    def sub(self, key: str, cls: type, where: Mapping[str, Any]) -> Any:
        value = where.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(key, "an object", value)
        try:
            return cls(**value)
        except TypeError as e:
            raise self.fail(key, f"the fields of {cls.__name__}", dict(value)) from e

    def spec(self) -> ModelSpec:
        try:
            return self._spec()
        except (CheckpointError, TypeError, ValueError) as e:
            raise CheckpointError(f"{self.source}: {e}") from e

    def _spec(self) -> ModelSpec:
        get = self.get
        pre = get("preprocessing", Mapping)
        origin = get("provenance", Mapping, {})
        unknown = sorted(set(origin) - {"trained_on", "adapted_from", "init", "split"})
        if unknown:
            raise CheckpointError(f"unknown provenance keys {unknown}")
        config = get("config", Mapping)
        return ModelSpec(
            arch=get("arch", str, ""),
            task=get("task", str, "reid"),
            options=dict(get("options", Mapping, {})),
            num_classes=get("num_classes", int),
            feature_dim=get("feature_dim", int, 512),
            mutual=get("mutual", bool, False),
            labels=tuple(str(x) for x in get("labels", list, [])),
            label_priors=tuple(float(x) for x in get("label_priors", list, [])),
            preprocessing=None if pre is None else Preprocessing.from_meta(pre),
            weights_sha256=get("weights_sha256", str, ""),
            provenance=Provenance(
                trained_on=get("trained_on", str, "", where=origin),
                adapted_from=self.sub("adapted_from", SourceWeights, origin),
                init=self.sub("init", InitRecord, origin),
                split=self.sub("split", Split, origin),
            ),
            epoch=get("epoch", int),
            record=dict(get("record", Mapping, {})),
            config=None if config is None else dict(config),
        )


def _trained_on_v1(meta: Mapping[str, Any]) -> str:
    """Format 1 recorded no training data; its run config says it: the target images of an
    adaptation, else ``data.dataset`` and its extra sources."""
    config = meta.get("config") or {}
    data, adapt = config.get("data") or {}, config.get("adapt") or {}
    if meta.get("adapted_from") and adapt.get("images"):
        return str(adapt["images"])
    names = [str(data["dataset"])] if data.get("dataset") else []
    names += [str(e).partition("=")[0].strip() for e in data.get("extra_sources") or []]
    return "+".join(names)


def migrate_v1(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Format 1 (the unversioned ``meta.json``) -> format 2 data. The rules:

    ``arch``, ``epoch``, ``mutual``, ``config`` keep their names; ``task`` defaults to
    ``reid`` (the oldest files have none); ``model_options`` -> ``options``; ``num_classes``,
    or an attribute model's ``num_attributes`` -> ``num_classes``; ``classes`` (classify) or
    ``attributes`` -> ``labels``; ``positive_ratios`` -> ``label_priors``; ``log`` -> ``record``;
    ``preprocessing`` is read as ``Preprocessing`` reads it (the oldest zoo files store only
    size, mean and std: the rest take the defaults: RGB, [0, 1], bilinear stretch, L2); ``init``,
    ``adapted_from`` (its ``method`` "" when absent) and ``split`` move under ``provenance``,
    with ``trained_on`` taken from the stored config; ``feature_dim`` is the builder option when
    one was given, else 512 (the loader sets it from the built model); ``weights_sha256`` is
    empty (format 1 had none; the loader and the zoo fill it in).
    """
    options = dict(meta.get("model_options") or {})
    task = meta.get("task", "reid")
    num_classes = meta.get("num_attributes") if task == "attributes" else meta.get("num_classes")
    labels = meta.get("attributes") if task == "attributes" else meta.get("classes")
    adapted = meta.get("adapted_from")
    if isinstance(adapted, Mapping):
        adapted = {"path": "", "sha256": "", "method": "", **adapted}
    pre = meta.get("preprocessing")
    return {
        "format_version": FORMAT_VERSION,
        "arch": meta.get("arch") or "",
        "task": task,
        "options": options,
        "num_classes": num_classes,
        "feature_dim": int(options.get("feature_dim", 512)),
        "mutual": bool(meta.get("mutual", False)),
        "labels": list(labels or []),
        "label_priors": list(meta.get("positive_ratios") or []),
        "preprocessing": None if pre is None else Preprocessing.from_meta(pre).to_meta(),
        "weights_sha256": "",
        "provenance": {
            "trained_on": _trained_on_v1(meta),
            "adapted_from": adapted,
            "init": meta.get("init"),
            "split": meta.get("split"),
        },
        "epoch": meta.get("epoch"),
        "record": meta.get("log") or {},
        "config": meta.get("config"),
    }


# A zoo card's entries that format 1 copied from meta.json; the spec now holds them
CARD_SPEC_KEYS = ("arch", "model_options", "preprocessing")


def migrate_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """A zoo ``card.json`` without the spec's fields it used to repeat (architecture, builder
    options, preprocessing): the card says how a model was made and scored, the spec what it
    is. Returns a new dict."""
    return {k: v for k, v in card.items() if k not in CARD_SPEC_KEYS}


def card_spec_fields(card: Mapping[str, Any]) -> dict[str, Any]:
    """What a format-1 card repeated of its spec, under the spec's names (for a check that the
    two agree): ``arch``, ``options``, ``preprocessing`` (a ``Preprocessing``)."""
    out: dict[str, Any] = {}
    if "arch" in card:
        out["arch"] = card["arch"]
    if "model_options" in card:
        out["options"] = dict(card["model_options"] or {})
    if card.get("preprocessing"):
        out["preprocessing"] = Preprocessing.from_meta(card["preprocessing"])
    return out


def read_spec_file(path: str | Path) -> ModelSpec:
    """The spec in a ``meta.json`` file (either format)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except JSON_ERRORS as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from e
    return ModelSpec.from_dict(data, source=path)


def load_spec(folder: str | Path) -> ModelSpec | None:
    """The spec of a checkpoint folder (or zoo entry); None when it has no ``meta.json``."""
    path = CheckpointDir(Path(folder)).spec
    return read_spec_file(path) if path.is_file() else None


def save_spec(spec: ModelSpec, folder: str | Path) -> Path:
    """Write ``spec`` (format 2) into a checkpoint folder; returns the file."""
    path = CheckpointDir(Path(folder)).spec
    path.write_text(spec.to_json())
    return path


def with_weights(spec: ModelSpec, sha256: str, **changes: Any) -> ModelSpec:
    """``spec`` describing another weights file (its SHA-256), with other ``changes``."""
    return replace(spec, weights_sha256=sha256, **changes)


__all__ = [
    "FORMAT_VERSION",
    "InitRecord",
    "ModelSpec",
    "Provenance",
    "SourceWeights",
    "Split",
    "card_spec_fields",
    "file_sha256",
    "load_spec",
    "migrate_card",
    "migrate_v1",
    "read_spec_file",
    "save_spec",
]
