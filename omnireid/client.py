"""A Python client of the gallery service (``omnireid serve``), over httpx.

```python
from omnireid.client import GalleryClient

with GalleryClient("http://127.0.0.1:8000", api_key=key) as gallery:
    ids = gallery.enrol(images=["a.jpg"], camera=0, track_id="t7", labels={"site": "door"})
    result = gallery.identify(images=["b.jpg"], k=5)[0]  # {"matches": [...], "match": id|None}
    gallery.remove(ids[0])
```

It imports neither torch nor the server's packages, so it is light enough for a camera-side
process; features computed there can be sent instead of images (``features=``). A refusal
(4xx) raises ``RequestError`` with the server's reason and ``status``; an unreachable server or
a 5xx raises ``ServiceError``. The key may also come from ``OMNIREID_API_KEY``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from omnireid.errors import RequestError, ServiceError, UsageError

API_KEY_ENV = "OMNIREID_API_KEY"
ImageLike = str | Path | bytes


def _b64(image: ImageLike) -> str:
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return base64.b64encode(data).decode("ascii")


def _rows(features: Any) -> list[list[float]]:
    x = np.asarray(features, dtype=np.float32)
    return (x[None] if x.ndim == 1 else x).tolist()


class GalleryClient:
    """The gallery API at ``url``; ``api_key`` defaults to ``$OMNIREID_API_KEY``."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"X-API-Key": key} if key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> GalleryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise ServiceError(f"cannot reach the gallery at {self.url}: {e}") from e
        if response.is_success:
            return response.json()
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        message = f"{method} {path}: {response.status_code} {' '.join(str(detail).split())}"
        if response.status_code >= 500:
            raise ServiceError(f"the gallery at {self.url} failed: {message}")
        raise RequestError(message, response.status_code)

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def embed(self, images: Sequence[ImageLike]) -> np.ndarray:
        """``(N, D)`` float32 features the server's model computes for ``images``."""
        answer = self._call("POST", "/embed", {"images": [_b64(i) for i in images]})
        return np.asarray(answer["features"], dtype=np.float32).reshape(-1, answer["dim"])

    def enrol(
        self,
        images: Sequence[ImageLike] | None = None,
        features: Any = None,
        *,
        ids: Sequence[str] | None = None,
        camera: int | None = None,
        timestamp: float | None = None,
        track_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[str]:
        """Enrol images or ``(N, D)`` features, all with the same metadata; returns their ids
        once the server holds them durably. ``ids``: one per item (default: server UUIDs)."""
        if (images is None) == (features is None):
            raise UsageError("give either images or features")
        values: list[dict[str, Any]] = (
            [{"image": _b64(i)} for i in images] if images is not None else []
        )
        values += [{"feature": row} for row in _rows(features)] if features is not None else []
        if ids is not None and len(ids) != len(values):
            raise UsageError(f"got {len(ids)} ids for {len(values)} items")
        meta = {"camera": camera, "timestamp": timestamp, "track_id": track_id}
        meta = {k: v for k, v in meta.items() if v is not None}
        items = [
            {**v, **meta, "labels": dict(labels or {}), **({"id": ids[i]} if ids else {})}
            for i, v in enumerate(values)
        ]
        return self._call("POST", "/gallery", {"items": items})["ids"]

    def identify(
        self, images: Sequence[ImageLike] | None = None, features: Any = None, k: int = 5
    ) -> list[dict[str, Any]]:
        """One result per query: ``matches`` (best first: id, score, same_person, metadata)
        and ``match`` (the best one's id when it is the same person, else None)."""
        if (images is None) == (features is None):
            raise UsageError("give either images or features")
        body: dict[str, Any] = {"k": k}
        if images is not None:
            body["images"] = [_b64(i) for i in images]
        else:
            body["features"] = _rows(features)
        return self._call("POST", "/identify", body)["results"]

    def get(self, entry_id: str) -> dict[str, Any]:
        return self._call("GET", f"/gallery/{quote(entry_id, safe='')}")

    def remove(self, entry_id: str) -> None:
        self._call("DELETE", f"/gallery/{quote(entry_id, safe='')}")
