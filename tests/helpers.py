"""Helpers several test packages share (fixtures live in ``tests/conftest.py``)."""

from __future__ import annotations

import struct
import zlib


def handmade_png(
    width: int, height: int, rows: bytes | None = None, *, bit_depth: int = 8, colour: int = 2
) -> bytes:
    """A PNG written chunk by chunk (zlib + CRC), so the file holds exactly what is given:
    an IHDR claiming ``width x height`` pixels of ``bit_depth`` bits (``colour`` 0 grey, 2 RGB),
    an IDAT of ``rows`` (each row led by its filter byte) when given, and IEND. A header that
    claims more than ``rows`` hold makes a decompression bomb in a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    chunks = [chunk(b"IHDR", header)]
    if rows is not None:
        chunks.append(chunk(b"IDAT", zlib.compress(rows)))
    chunks.append(chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)
