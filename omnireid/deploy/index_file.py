"""The gallery index on disk: a directory with a checksummed header, a FAISS file and metadata.

``header.json`` holds the format name and version, the ``ModelSpec`` of the model whose
features it holds (``spec``: architecture, preprocessing, weights SHA-256; ``models.spec``'s
JSON, None for features of unknown origin), the feature size, metric, kind, count and
parameters, the SHA-256 of ``index.faiss`` and ``metadata.npz``, and a SHA-256 of the header
itself, so that a header edited by hand (one changed query size would silently change every
result) is refused. Only a newer version is refused before the checksum is checked; a header
without one is refused whatever older version it claims (format 1 had none, so editing a
header down to version 1 would switch the check off), and format 1 indexes are no longer read
(rebuild them). Format 2 (``arch``, ``image_size`` and the weights' path and SHA-256 under
``extra.weights`` instead of the spec) is read, once its checksum holds, into format 3's
layout (``migrate_v2``). ``metadata.npz`` is read without pickle. Reading refuses other
formats, unverifiable headers and corrupt files with an ``IndexFileError`` naming the file;
``omnireid.deploy.index.GalleryIndex`` is the one user.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from omnireid.errors import JSON_ERRORS, CheckpointError, IndexFileError
from omnireid.models.spec import ModelSpec
from omnireid.models.weights import file_sha256
from omnireid.preprocessing import Preprocessing

FORMAT = "omnireid-gallery-index"
# 2: 0-based camera ids, checksummed header; 3: the model's spec instead of arch/image_size
FORMAT_VERSION = 3
READ_VERSIONS = (2, 3)
FILES = ("index.faiss", "metadata.npz")
METADATA = ("paths", "pids", "camids", "timestamps")
# what a header's values may be (as ``deploy.index.GalleryIndex`` takes them)
FAISS_METRICS = ("ip", "l2")  # the header's "metric": GalleryIndex.faiss_metric
METRICS = FAISS_METRICS  # its old name
KINDS = ("flat", "ivf", "hnsw")
PARAMS: tuple[tuple[str, int, int | None], ...] = (("nlist", 1, None), ("nprobe", 1, None))
PARAMS += (("hnsw_m", 2, None),)
PARAMS += (("ef_construction", 1, None), ("ef_search", 1, None))


def header_digest(header: dict) -> str:
    """SHA-256 of the header's content without its own checksum entry (canonical JSON)."""
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_index_dir(
    out: Path, index: faiss.Index, metadata: dict[str, np.ndarray], header: dict
) -> Path:
    """Write ``index``, the ``METADATA`` arrays and ``header`` (+ format, checksums) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / "index.faiss"))
    arrays: dict[str, Any] = {name: metadata[name] for name in METADATA}
    np.savez(out / "metadata.npz", **arrays)
    header = {"format": FORMAT, "version": FORMAT_VERSION, **header}
    header["files"] = {name: file_sha256(out / name) for name in FILES}
    header["header_sha256"] = header_digest(header)
    (out / "header.json").write_text(json.dumps(header, indent=2) + "\n")
    return out


def read_header(path: str | Path) -> dict:
    """The checked JSON header of the index directory ``path``."""
    path = Path(path)
    file = path / "header.json"
    if not file.is_file():
        raise IndexFileError(
            f"{path} is not a gallery index: expected a directory with {file.name}"
        )
    try:
        header = json.loads(file.read_text())
    except JSON_ERRORS as e:
        raise IndexFileError(f"{file} is corrupt (not valid JSON: {e})") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise IndexFileError(f"{file} is not an {FORMAT} header")
    version = header.get("version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise IndexFileError(
            f"{path} has index format version {version}; this omnireid reads version "
            f"{FORMAT_VERSION}: upgrade omnireid or rebuild the index"
        )
    if "header_sha256" not in header:  # whatever version it claims: nothing to verify it by
        raise IndexFileError(
            f"{file} carries no header checksum (format 1, or edited): it cannot be verified; "
            "rebuild the index"
        )
    if header["header_sha256"] != header_digest(header):
        raise IndexFileError(
            f"{file} was changed after the index was written (its checksum does not match); "
            "rebuild the index"
        )
    if version not in READ_VERSIONS:
        raise IndexFileError(
            f"{path} has index format version {version!r}; this omnireid reads versions "
            f"{READ_VERSIONS[0]} to {FORMAT_VERSION}: rebuild the index"
        )
    files = header.get("files")
    if not isinstance(files, dict) or set(files) != set(FILES):
        raise IndexFileError(f"{file} lists no checksums for its files: cannot verify it")
    check_header_values(header, file)
    header = migrate_v2(header) if version == 2 else header
    header_spec(header, file)  # readable, or refused here
    return header


def migrate_v2(header: dict) -> dict:
    """A verified format-2 header in format 3's layout (its checksums kept as they were): the
    spec from ``arch``, ``image_size`` (the rest of the preprocessing was not recorded: the
    defaults) and ``extra.weights.sha256``; ``extra.weights`` becomes the weights' path."""
    new = {k: v for k, v in header.items() if k not in ("arch", "image_size")}
    extra = dict(header.get("extra") or {})
    recorded = extra.get("weights")
    weights = recorded if isinstance(recorded, dict) else {}
    extra["weights"] = weights.get("path")
    size = header.get("image_size")
    spec = None
    if header.get("arch") is not None:
        spec = ModelSpec(
            arch=str(header["arch"]),
            feature_dim=int(header["dim"]),
            preprocessing=Preprocessing(int(size[0]), int(size[1])) if size else None,
            weights_sha256=str(weights.get("sha256") or ""),
        )
    new["spec"] = None if spec is None else spec.to_dict()
    new["extra"] = extra
    return new


def header_spec(header: dict, source: object = "the index header") -> ModelSpec | None:
    """The spec of a (format-3 or migrated) header; None for features of unknown origin."""
    data = header.get("spec")
    if data is None:
        return None
    try:
        return ModelSpec.from_dict(data, source=source)
    except CheckpointError as e:
        raise IndexFileError(str(e)) from e


def read_index_dir(path: Path, header: dict) -> tuple[faiss.Index, dict[str, np.ndarray]]:
    """The FAISS index and ``METADATA`` arrays of ``path``, checked against ``header``'s sums."""
    for name, digest in header["files"].items():
        if not (path / name).is_file() or file_sha256(path / name) != digest:
            raise IndexFileError(f"{path / name} is missing or corrupt (checksum mismatch)")
    try:
        index = faiss.read_index(str(path / "index.faiss"))
        with np.load(path / "metadata.npz", allow_pickle=False) as m:
            metadata = {name: m[name] for name in METADATA}
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        raise IndexFileError(f"{path} could not be read ({e})") from e
    check_metadata(metadata, int(index.ntotal), header.get("count"), path)
    return index, metadata


REQUIRED_KEYS = ("dim", "metric", "kind", "params")  # every writer's header has them


def _is_int(value: object, lo: int, hi: int | None = None) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return value >= lo and (hi is None or value <= hi)


def check_header_values(header: dict, file: Path) -> None:
    """Refuse a header whose values this version cannot use (a checksum proves only that the
    header was not changed after it was written, not that its writer wrote sense): each is
    named with what it must be, as an ``IndexFileError``, never a crash or a wrong result."""
    missing = [key for key in REQUIRED_KEYS if key not in header]
    if missing:
        raise IndexFileError(f"{file}: no {', '.join(missing)}: not a header any writer wrote")
    params = header.get("params")
    rules: list[tuple[str, object, bool, str]] = [
        ("dim", header.get("dim"), _is_int(header.get("dim"), 1), "an integer >= 1"),
        ("count", header.get("count"), _is_int(header.get("count", 0), 0), "an integer >= 0"),
        (
            "metric",
            header.get("metric"),
            header.get("metric") in FAISS_METRICS,
            f"one of {FAISS_METRICS}",
        ),
        ("kind", header.get("kind"), header.get("kind") in KINDS, f"one of {KINDS}"),
        (
            "normalize",
            header.get("normalize"),
            isinstance(header.get("normalize"), bool),
            "true or false",
        ),
        ("params", params, isinstance(params, dict), "an object"),
        ("extra", header.get("extra"), isinstance(header.get("extra", {}), dict), "an object"),
    ]
    if "image_size" in header:  # format 2
        size = header["image_size"]
        fits = isinstance(size, list) and len(size) == 2 and all(_is_int(v, 16, 4096) for v in size)
        rules.append(("image_size", size, fits or size is None, "two integers within [16, 4096]"))
    if "arch" in header:  # format 2
        rules.append(("arch", header["arch"], isinstance(header["arch"], str | None), "a string"))
    if isinstance(params, dict):
        for name, lo, hi in PARAMS:
            value = params.get(name)
            fits = _is_int(value, lo, hi) or (name == "nlist" and value is None)
            legal = f"an integer {f'within [{lo}, {hi}]' if hi else f'>= {lo}'}"
            rules.append(
                (f"params.{name}", value, fits, legal + (" or null" if name == "nlist" else ""))
            )
    for name, value, fits, legal in rules:
        if name.split(".")[0] in header and not fits:  # (absent: a hand-written header)
            raise IndexFileError(f"{file}: {name} is {json.dumps(value)[:60]}, it must be {legal}")


def check_metadata(
    metadata: dict[str, np.ndarray], count: int, counted: object, path: Path
) -> None:
    """Refuse an index whose header counts other than ``count`` features (``counted``, when
    given) or whose metadata arrays have another shape or kind than the writer's: one entry
    per feature, paths as strings, pids and camera ids as integers, timestamps as floats."""
    if counted is not None and counted != count:
        raise IndexFileError(
            f"{path / 'header.json'}: count is {counted}, the index holds {count} features"
        )
    file = path / "metadata.npz"
    kinds = {"paths": "U", "pids": "iu", "camids": "iu", "timestamps": "f"}
    for name, array in metadata.items():
        if array.ndim != 1 or len(array) != count:
            raise IndexFileError(
                f"{file}: {name} has shape {array.shape}, the index holds {count} features"
            )
        if array.dtype.kind not in kinds[name]:
            raise IndexFileError(f"{file}: {name} holds {array.dtype} values, not the writer's")
