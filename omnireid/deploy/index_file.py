"""The gallery index on disk: a directory with a checksummed header, a FAISS file and metadata.

``header.json`` holds the format name and version, what the index was built for (dim, arch,
image size, metric, kind, count, parameters), the SHA-256 of ``index.faiss`` and
``metadata.npz``, and a SHA-256 of the header itself, so that a header edited by hand (one
changed query size would silently change every result) is refused. Only a newer version is
refused before the checksum is checked; a header without one is refused whatever older version
it claims (format 1 had none, so editing a header down to version 1 would switch the check
off), and format 1 indexes are no longer read (rebuild them). ``metadata.npz`` is read without
pickle. Reading refuses other formats, unverifiable headers and corrupt files with an
``IndexFileError`` naming the file; ``omnireid.deploy.index.GalleryIndex`` is the one user.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import faiss
import numpy as np

from omnireid.errors import IndexFileError
from omnireid.models.weights import file_sha256

FORMAT = "omnireid-gallery-index"
FORMAT_VERSION = 2  # 2: 0-based camera ids, checksummed header (the only version read)
FILES = ("index.faiss", "metadata.npz")
METADATA = ("paths", "pids", "camids", "timestamps")


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
    np.savez(out / "metadata.npz", **{name: metadata[name] for name in METADATA})
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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
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
    if version != FORMAT_VERSION:
        raise IndexFileError(
            f"{path} has index format version {version!r}; this omnireid reads version "
            f"{FORMAT_VERSION}: rebuild the index"
        )
    files = header.get("files")
    if not isinstance(files, dict) or set(files) != set(FILES):
        raise IndexFileError(f"{file} lists no checksums for its files: cannot verify it")
    return header


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
    return index, metadata
