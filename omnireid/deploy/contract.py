"""The contract an exported model carries: what goes in, what comes out, where it came from.

``ModelContract`` is the model's ``ModelSpec`` (``models.spec``: architecture, feature size,
preprocessing, SHA-256 of the weights it was exported from, provenance) plus the graph's
tensor names and layout. It is written as flat string properties: the spec whole, as its JSON
(``spec``), and, for runtimes without omnireid (C++ included), its fields such a runtime needs
one per property: text as it is (``RGB``), numbers and lists as JSON (``256``,
``[0.485, 0.456, 0.406]``). ONNX ``metadata_props`` keys are prefixed ``omnireid.``; OpenVINO
keeps them under its ``rt_info`` section ``omnireid``. ``FORMAT_VERSION`` grows when a field
changes meaning; a reader refuses a newer version instead of guessing, and reads format 1 (the
flat fields without the spec, every export before it) into a spec (``migrate_v1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnireid.errors import JSON_ERRORS, CheckpointError, ExportError
from omnireid.models.spec import ModelSpec, Provenance
from omnireid.preprocessing import Preprocessing

FORMAT_VERSION = 2  # 1: the flat fields only, without the spec
PREFIX = "omnireid."
INPUT_NAME, OUTPUT_NAME = "images", "features"
TEXT_FIELDS = frozenset(
    {"arch", "weights_sha256", "dataset", "input_name", "output_name", "layout", "spec"}
    | {"channel_order", "interpolation", "resize", "output_norm"}
)
SPEC_FIELDS = ("arch", "feature_dim", "weights_sha256", "dataset")  # the flat copies


class MissingContractError(ExportError):
    """A model file without an omnireid contract (another tool's, or an older export)."""


@dataclass(frozen=True)
class ModelContract:
    """Everything needed to feed an exported model and use its output (module docstring).

    ``spec`` is the exported model's spec, its preprocessing set (the one the graph was
    exported for); ``weights_sha256`` "" for a model exported with random weights on purpose.
    """

    spec: ModelSpec
    input_name: str = INPUT_NAME  # float32 (N, 3, height, width), N free unless fixed
    output_name: str = OUTPUT_NAME  # float32 (N, feature_dim), before output_norm
    layout: str = "NCHW"
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.spec.preprocessing is None:
            raise ExportError("a model contract needs the spec's preprocessing")

    @property
    def arch(self) -> str:
        return self.spec.arch

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    @property
    def preprocessing(self) -> Preprocessing:
        assert self.spec.preprocessing is not None  # __post_init__
        return self.spec.preprocessing

    @property
    def weights_sha256(self) -> str:
        return self.spec.weights_sha256

    @property
    def dataset(self) -> str:
        """What the weights were trained on, "" when unknown."""
        return self.spec.provenance.trained_on

    def _flat(self) -> dict[str, Any]:
        """The spec's fields a runtime without omnireid reads, as JSON values."""
        return {
            "arch": self.arch,
            "feature_dim": self.feature_dim,
            "weights_sha256": self.weights_sha256,
            "dataset": self.dataset,
            **self.preprocessing.to_meta(),
        }

    def to_props(self) -> dict[str, str]:
        """``{field: JSON value}`` for the model file (keys without the ``omnireid.`` prefix)."""
        values: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "layout": self.layout,
            **self._flat(),
            "spec": json.dumps(self.spec.to_dict(), sort_keys=True),
        }
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str | Path) -> ModelContract:
        """Read ``to_props``'s dict back (format 1 migrated); ``source`` names the file in
        errors. A format-2 file whose flat fields disagree with its spec is refused."""
        if "format_version" not in props:
            raise MissingContractError(
                f"{source} carries no omnireid preprocessing contract (exported by another tool "
                "or an older omnireid); re-export it with `omnireid export`"
            )
        try:
            values = {k: v if k in TEXT_FIELDS else json.loads(v) for k, v in props.items()}
        except JSON_ERRORS as e:
            raise ExportError(f"{source}: unreadable contract property: {e}") from e
        version = values["format_version"]
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise ExportError(
                f"{source} has contract format {version!r}; this omnireid reads up to "
                f"{FORMAT_VERSION}: upgrade omnireid"
            )
        try:
            spec = migrate_v1(values) if version < 2 else _read_spec(values, source)
            contract = cls(
                spec,
                input_name=str(values.get("input_name", INPUT_NAME)),
                output_name=str(values.get("output_name", OUTPUT_NAME)),
                layout=str(values.get("layout", "NCHW")),
            )
        except (KeyError, TypeError, ValueError, CheckpointError) as e:
            raise ExportError(f"{source}: incomplete or invalid contract ({e})") from e
        if version >= 2:
            _check_flat(contract, values, source)
        return contract


def _read_spec(values: Mapping[str, Any], source: str | Path) -> ModelSpec:
    """The spec property of a format-2 contract."""
    if "spec" not in values:
        raise KeyError("spec")
    try:
        data = json.loads(values["spec"])
    except JSON_ERRORS as e:
        raise ValueError(f"its spec is not JSON: {e}") from e
    return ModelSpec.from_dict(data, source=f"{source} (contract spec)")


def _check_flat(contract: ModelContract, values: Mapping[str, Any], source: str | Path) -> None:
    """Refuse a format-2 contract whose flat fields (what other runtimes read) say other than
    its spec: one of the two was edited after the export."""
    expected = contract._flat()
    for key, value in values.items():
        if key in expected and value != expected[key]:
            raise ExportError(
                f"{source}: the contract's {key}={value!r} disagrees with its spec "
                f"({expected[key]!r}): the file was edited after the export; re-export it"
            )


def migrate_v1(values: Mapping[str, Any]) -> ModelSpec:
    """A format-1 contract's flat fields (JSON values) -> the spec it describes: ``arch``,
    ``feature_dim``, ``weights_sha256``, the preprocessing fields, ``dataset`` ->
    ``provenance.trained_on``; the rest (task, options, classifier) take the spec's defaults."""
    return ModelSpec(
        arch=str(values["arch"]),
        feature_dim=int(values["feature_dim"]),
        preprocessing=Preprocessing.from_meta(values),
        weights_sha256=str(values.get("weights_sha256", "")),
        provenance=Provenance(trained_on=str(values.get("dataset", ""))),
    )


def default_file_name(arch: str, dataset: str, suffix: str) -> str:
    """``{arch}_{dataset}{suffix}`` (``osnet_x0_25_market1501.onnx``), ``{arch}{suffix}``
    when the dataset is unknown."""
    return f"{arch}_{dataset}{suffix}" if dataset else f"{arch}{suffix}"


def output_path(out: str | Path | None, arch: str, dataset: str, suffix: str) -> Path:
    """Where an export goes: ``out`` when it names a file; the default file name inside ``out``
    when it is an existing folder or ends with ``/``; in the current folder when ``None``."""
    name = default_file_name(arch, dataset, suffix)
    if out is None:
        return Path(name)
    if Path(out).is_dir() or str(out).endswith(("/", "\\")):
        return Path(out) / name
    path = Path(out)
    if path.suffix != suffix:
        raise ExportError(f"--out {out}: an {suffix} file name or a folder is expected")
    return path


def training_dataset(spec: ModelSpec, weights: str | Path) -> str:
    """The dataset weights were trained on, for a file name: the spec's ``trained_on`` when it
    is a name (an adapted model's is a folder), else what a file name like
    ``osnet_x0_25_market1501.pt`` says after ``{arch}_``; "" when unknown."""
    trained_on = spec.provenance.trained_on
    if trained_on and re.fullmatch(r"[A-Za-z0-9_.+-]+", trained_on):
        return trained_on
    stem, arch = Path(weights).stem, spec.arch
    return stem.removeprefix(f"{arch}_") if stem.startswith(f"{arch}_") else ""
