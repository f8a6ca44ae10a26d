"""The contract an exported model carries: what goes in, what comes out, where it came from.

``ModelContract`` is ``Preprocessing`` plus the model's identity (architecture, feature size,
SHA-256 of the weights file it was exported from, training dataset) and the graph's tensor
names and layout. It is written as flat string properties, one per field: text as it is
(``RGB``), numbers and lists as JSON (``256``, ``[0.485, 0.456, 0.406]``). ONNX
``metadata_props`` keys are prefixed ``omnireid.``; OpenVINO keeps them under its ``rt_info``
section ``omnireid``; any runtime (C++ included) can read them without omnireid.
``FORMAT_VERSION`` grows when a field changes meaning; a reader refuses a newer version
instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnireid.errors import ExportError
from omnireid.preprocessing import Preprocessing

FORMAT_VERSION = 1
PREFIX = "omnireid."
INPUT_NAME, OUTPUT_NAME = "images", "features"
TEXT_FIELDS = frozenset(
    {"arch", "weights_sha256", "dataset", "input_name", "output_name", "layout"}
    | {"channel_order", "interpolation", "resize", "output_norm"}
)


class MissingContractError(ExportError):
    """A model file without an omnireid contract (another tool's, or an older export)."""


@dataclass(frozen=True)
class ModelContract:
    """Everything needed to feed an exported model and use its output (module docstring)."""

    arch: str
    feature_dim: int
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    weights_sha256: str = ""  # "" for a model exported with random weights on purpose
    dataset: str = ""  # what the weights were trained on, when known
    input_name: str = INPUT_NAME  # float32 (N, 3, height, width), N free unless fixed
    output_name: str = OUTPUT_NAME  # float32 (N, feature_dim), before output_norm
    layout: str = "NCHW"
    format_version: int = FORMAT_VERSION

    def to_props(self) -> dict[str, str]:
        """``{field: JSON value}`` for the model file (keys without the ``omnireid.`` prefix)."""
        values: dict[str, Any] = {
            "format_version": self.format_version,
            "arch": self.arch,
            "feature_dim": self.feature_dim,
            "weights_sha256": self.weights_sha256,
            "dataset": self.dataset,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "layout": self.layout,
            **self.preprocessing.to_meta(),
        }
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str | Path) -> ModelContract:
        """Read ``to_props``'s dict back; ``source`` names the file in errors."""
        if "format_version" not in props:
            raise MissingContractError(
                f"{source} carries no omnireid preprocessing contract (exported by another tool "
                "or an older omnireid); re-export it with `omnireid export`"
            )
        try:
            values = {k: v if k in TEXT_FIELDS else json.loads(v) for k, v in props.items()}
        except json.JSONDecodeError as e:
            raise ExportError(f"{source}: unreadable contract property: {e}") from e
        version = values["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ExportError(
                f"{source} has contract format {version!r}; this omnireid reads up to "
                f"{FORMAT_VERSION}: upgrade omnireid"
            )
        try:
            return cls(
                arch=str(values["arch"]),
                feature_dim=int(values["feature_dim"]),
                preprocessing=Preprocessing.from_meta(values),
                weights_sha256=str(values.get("weights_sha256", "")),
                dataset=str(values.get("dataset", "")),
                input_name=str(values.get("input_name", INPUT_NAME)),
                output_name=str(values.get("output_name", OUTPUT_NAME)),
                layout=str(values.get("layout", "NCHW")),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ExportError(f"{source}: incomplete or invalid contract ({e})") from e


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


def training_dataset(meta: Mapping[str, Any], weights: str | Path, arch: str) -> str:
    """The dataset weights were trained on: the run config's ``data.dataset``, else what a file
    name like ``osnet_x0_25_market1501.pt`` says after ``{arch}_``; "" when unknown."""
    data = (meta.get("config") or {}).get("data") or {}
    if data.get("dataset"):
        return str(data["dataset"])
    stem = Path(weights).stem
    return stem.removeprefix(f"{arch}_") if stem.startswith(f"{arch}_") else ""
