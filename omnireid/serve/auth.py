"""API keys of the gallery service: ``read`` keys may embed, identify and look up; ``write``
keys may also enrol and delete.

Keys come from a file (one ``read KEY`` or ``write KEY`` per line; a ``#`` at the start of a
line or after a space starts a comment) and/or the environment variables
``OMNIREID_READ_KEYS`` / ``OMNIREID_WRITE_KEYS`` (comma-separated), never from the code or the
command line (where ``ps`` would show them). A key is at least 16 printable ASCII characters
(what an HTTP header carries) without spaces, ``#`` or ``,`` (the separators of those two
sources, so that no key is ever cut short silently). Only their SHA-256 digests are kept in
memory. Clients send a key in the ``X-API-Key`` header.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omnireid.errors import UsageError

log = logging.getLogger("omnireid.serve")

HEADER = "X-API-Key"
SCOPES = ("read", "write")
ENV = {"read": "OMNIREID_READ_KEYS", "write": "OMNIREID_WRITE_KEYS"}
MIN_LENGTH = 16
_KEY = re.compile(r"^[!-~]+$")  # printable ASCII, no space
_SEPARATORS = "#,"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _check(key: str, where: str = "") -> None:
    """Refuse a key that is short, not printable ASCII, or holds a separator (``where``:
    the file and line it came from, as a prefix)."""
    if len(key) < MIN_LENGTH or not _KEY.fullmatch(key) or any(c in key for c in _SEPARATORS):
        raise UsageError(
            f"{where}API keys must be at least {MIN_LENGTH} printable ASCII characters without "
            "spaces, '#' or ',' (e.g. from `python -c 'import secrets; "
            "print(secrets.token_urlsafe())'`)"
        )


@dataclass(frozen=True)
class ApiKeys:
    """SHA-256 digests of the read and write keys; no keys at all means no authentication."""

    read: frozenset[bytes] = frozenset()
    write: frozenset[bytes] = frozenset()

    @property
    def enabled(self) -> bool:
        return bool(self.read or self.write)

    def scope_of(self, key: str) -> str | None:
        """``"write"``, ``"read"``, or None for a key that is not known."""
        d = _digest(key)
        return "write" if d in self.write else "read" if d in self.read else None

    @classmethod
    def from_keys(cls, read: list[str], write: list[str]) -> ApiKeys:
        for key in (*read, *write):
            _check(key)
        return cls(frozenset(map(_digest, read)), frozenset(map(_digest, write)))


def read_key_file(path: str | Path) -> dict[str, list[str]]:
    """``{"read": [...], "write": [...]}`` from a key file; warns when others can read it."""
    path = Path(path)
    keys: dict[str, list[str]] = {"read": [], "write": []}
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not a key file (not UTF-8 text: {e.reason})") from e
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()  # a comment: '#' after a space
        if not line:
            continue
        if "#" in line:
            raise UsageError(
                f"{path}:{number}: '#' inside a key (a comment starts with '#' after a space; "
                "keys may not contain '#')"
            )
        parts = line.split()
        if len(parts) != 2 or parts[0] not in SCOPES:
            raise UsageError(f"{path}:{number}: expected 'read KEY' or 'write KEY'")
        _check(parts[1], f"{path}:{number}: ")
        keys[parts[0]].append(parts[1])
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users; chmod 600 it", path)
    return keys


def load_keys(file: str | Path | None = None, env: Mapping[str, str] = os.environ) -> ApiKeys:
    """The keys of ``file`` and of the environment together."""
    keys = read_key_file(file) if file is not None else {"read": [], "write": []}
    for scope, name in ENV.items():
        keys[scope] += [k.strip() for k in env.get(name, "").split(",") if k.strip()]
    return ApiKeys.from_keys(keys["read"], keys["write"])
