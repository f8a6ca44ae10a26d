"""What one request may carry, and images decoded within those limits.

Everything here answers bad input with a ``RequestError`` (a 4xx and one line), never a 500:
request bodies over ``max_body_bytes`` get 413 before they are read in full, images are
checked for size from their header before any pixel is decoded (each image, and the sum over
the images of a request: ``max_request_pixels``), and only common photo formats are decoded
at all.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image

from omnireid.data.images import to_rgb
from omnireid.errors import RequestError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


@dataclass(frozen=True)
class Limits:
    """Per-request limits: body bytes, images, feature rows, hits; per-image size; decoded
    pixels of all the images of one request together (also what the server decodes at once,
    across requests: ``pixels.PixelBudget``)."""

    max_body_bytes: int = 16 << 20
    max_images: int = 32
    max_features: int = 1000
    max_image_side: int = 4096
    max_image_pixels: int = 4096 * 4096
    max_k: int = 100
    max_request_pixels: int = 32_000_000


def open_image(data: str, index: int, limits: Limits) -> Image.Image:
    """A base64-encoded JPEG/PNG/WebP/BMP opened, its size checked from the header (413 over
    the limits); no pixel is decoded yet. 422 when it is not an image this service reads."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(f"image {index} is not valid base64 ({e})", 422) from e
    try:
        image = Image.open(io.BytesIO(raw), formats=FORMATS)
    except Image.DecompressionBombError as e:
        raise RequestError(f"image {index} is too large ({e})", 413) from e
    except Exception as e:  # PIL raises many types for hostile bytes
        raise RequestError(
            f"image {index} is not a readable {'/'.join(FORMATS)} image ({type(e).__name__})", 422
        ) from e
    w, h = image.size
    if max(w, h) > limits.max_image_side or w * h > limits.max_image_pixels:
        raise RequestError(
            f"image {index} is {w}x{h}; the limit is {limits.max_image_side} pixels a side and "
            f"{limits.max_image_pixels} pixels in all",
            413,
        )
    return image


def decode_pixels(image: Image.Image, index: int) -> Image.Image:
    """The pixels of an ``open_image`` as 8-bit RGB; 422 when the stream is corrupt."""
    try:
        return to_rgb(image)  # decodes the pixels; 16-bit grey scaled, not clipped to white
    except Exception as e:  # a truncated or corrupt stream, in any decoder
        raise RequestError(f"image {index} is corrupt ({' '.join(str(e).split())})", 422) from e


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``, declared or streamed."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen, over, started, refused = 0, False, False, False

        async def counting_receive() -> dict:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                over = True
                raise _TooLarge
            return message

        async def guarded_send(message: dict) -> None:
            # the app may turn _TooLarge into an answer of its own: the client gets the 413
            nonlocal started, refused
            if over and not started:
                if not refused:
                    refused = True
                    await self._refuse(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not started and not refused:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        detail = f"request body over the limit of {self.max_bytes} bytes"
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    """Raised inside the app when the streamed body passes the limit."""
