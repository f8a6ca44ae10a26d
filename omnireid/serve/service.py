"""The gallery service without HTTP: images and features in, entries and matches out.

``GalleryService`` joins a ``FeatureExtractor`` (images -> features), a ``VectorStore`` and an
optional same-person threshold (a cosine similarity calibrated with ``omnireid calibrate``).
Inputs arrive as JSON values (base64 images, lists of floats); every refusal is a
``RequestError`` carrying its HTTP status.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from omnireid.errors import (
    JSON_ERRORS,
    DegenerateFeaturesError,
    NonFiniteFeaturesError,
    RequestError,
    UsageError,
)
from omnireid.serve.batching import QueryBatcher
from omnireid.serve.limits import Limits, decode_pixels, open_image
from omnireid.serve.pixels import PixelBudget, release_free_memory
from omnireid.serve.store import Entry, Hit, VectorStore, check_id, normalized


@dataclass(frozen=True)
class Threshold:
    """Accept a match when its cosine similarity is ``>= value``."""

    value: float
    target_fpr: float | None = None
    source: str = "--threshold"


def read_threshold(path: str | Path, arch: str | None, target_fpr: float | None) -> Threshold:
    """The threshold in an ``omnireid calibrate`` verification.json: its suggested one, or
    the one for ``target_fpr`` among those it reports. Refuses one calibrated on another
    architecture."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text())
    except JSON_ERRORS as e:
        raise UsageError(f"{path} is not a verification.json (invalid JSON: {e})") from e
    if not isinstance(summary, dict) or "suggested" not in summary:
        raise UsageError(f"{path} is not a verification.json from `omnireid calibrate`")
    if arch and summary.get("arch") and summary["arch"] != arch:
        raise UsageError(f"{path} was calibrated for {summary['arch']}, the server runs {arch}")
    points = summary.get("tpr_at_fpr", {})
    if not isinstance(points, dict):
        raise UsageError(f"{path}: tpr_at_fpr is not an object of thresholds by FPR")
    point = _point(summary["suggested"], path, "suggested")
    if target_fpr is not None:
        found = points.get(f"{target_fpr:g}")
        if found is None:
            known = ", ".join(dict.fromkeys([*points, f"{point.target_fpr:g}"]))
            raise UsageError(f"{path} has no threshold for FPR {target_fpr:g}; it has {known}")
        point = _point(found, path, f"tpr_at_fpr.{target_fpr:g}")
    return point


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _point(point: object, path: Path, where: str) -> Threshold:
    """One ``{"threshold": T, "target_fpr": F}`` entry of a verification.json, checked: a
    threshold outside [-1, 1] (no cosine similarity reaches it, or every one does) would make
    every answer's ``same_person`` the same, silently."""
    if not isinstance(point, dict):
        raise UsageError(f"{path}: {where} is not an object with a threshold and a target_fpr")
    value, fpr = point.get("threshold"), point.get("target_fpr")
    if not _number(value) or not -1 <= value <= 1:
        raise UsageError(
            f"{path}: {where}.threshold must be a cosine similarity in [-1, 1], got {value!r}"
        )
    if not _number(fpr) or not 0 < fpr <= 1:
        raise UsageError(f"{path}: {where}.target_fpr must be a number in (0, 1], got {fpr!r}")
    return Threshold(float(value), float(fpr), str(path))


def check_extractor(extractor: Any, source: Any) -> None:
    """Refuse to serve a model whose features would lie (``FeatureCheck``): two different
    images of seeded noise must give finite, different features. Without this, degenerate
    weights (all zero, collapsed) would pass every one-image request unnoticed."""
    rng = np.random.default_rng(0)
    height, width = extractor.input_size
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]
    try:
        extractor(images)
    except (NonFiniteFeaturesError, DegenerateFeaturesError) as e:
        raise UsageError(f"{source}: not served: {e}") from e


# after a request of this many decoded pixels the freed memory is handed back to the system
# (a few ms); below it, what a request decoded is small and reused by the next ones
TRIM_FROM = 4_000_000


def _decision(score: float, threshold: float | None) -> dict[str, bool | None]:
    return {"same_person": None if threshold is None else score >= threshold}


class GalleryService:
    """Embed, enrol, identify and remove, within ``limits``."""

    def __init__(
        self,
        store: VectorStore,
        extractor: Any,
        threshold: Threshold | None = None,
        limits: Limits | None = None,
    ) -> None:
        if extractor.feature_dim != store.dim:
            raise UsageError(
                f"the model gives {extractor.feature_dim}-d features, the gallery holds "
                f"{store.dim}-d ones"
            )
        self.store, self.extractor, self.threshold = store, extractor, threshold
        self.limits = limits or Limits()
        self.counts: Counter[str] = Counter()
        self.started = time.time()
        self._model = threading.Lock()  # one forward pass at a time; torch uses the cores
        self._pixels = PixelBudget(self.limits.max_request_pixels)
        self._search = QueryBatcher(store.search)
        self._counting = threading.Lock()

    def close(self) -> None:
        """Stop the search thread (after the searches waiting)."""
        self._search.close()

    def count(self, what: str, n: int) -> None:
        with self._counting:
            self.counts[what] += n

    # --- inputs --------------------------------------------------------------------------
    def embed(self, images: list[str]) -> np.ndarray:
        """``(N, D)`` features of base64-encoded images."""
        if not images:
            raise RequestError("no images given", 422)
        if len(images) > self.limits.max_images:
            raise RequestError(
                f"{len(images)} images in one request; the limit is {self.limits.max_images}", 413
            )
        opened = [open_image(data, i, self.limits) for i, data in enumerate(images)]
        pixels = sum(image.width * image.height for image in opened)
        if pixels > self.limits.max_request_pixels:
            raise RequestError(
                f"the {len(opened)} images of this request have {pixels} pixels together; the "
                f"limit is {self.limits.max_request_pixels} (--max-request-megapixels)",
                413,
            )
        try:
            with self._pixels.hold(pixels):
                pictures: list[Any] = []
                while opened:  # each source dropped once converted: one image in two copies at most
                    pictures.append(decode_pixels(opened.pop(0), len(pictures)))
                with self._model:
                    feats = self._extract(pictures)
                del pictures
        finally:
            if pixels >= TRIM_FROM:
                release_free_memory()
        self.count("embedded", len(feats))
        return feats

    def _extract(self, pictures: list[Any]) -> np.ndarray:
        """The model's features of decoded images; features that would lie (``FeatureCheck``:
        not finite, or one feature for several different images) are a 422 naming why, not a
        500: nothing is stored or searched with them."""
        try:
            return self.extractor(pictures)
        except (NonFiniteFeaturesError, DegenerateFeaturesError) as e:
            self.count("refused_features", len(pictures))
            raise RequestError(f"no features for these images: {e}", 422) from e

    def features(self, rows: list[list[float]]) -> np.ndarray:
        """``(N, D)`` normalised features from JSON rows; 422 for another dimension."""
        if len(rows) > self.limits.max_features:
            raise RequestError(
                f"{len(rows)} features in one request; the limit is {self.limits.max_features}",
                413,
            )
        if any(len(r) != self.store.dim for r in rows):
            bad = next(i for i, r in enumerate(rows) if len(r) != self.store.dim)
            raise RequestError(
                f"feature {bad} has {len(rows[bad])} values; this gallery holds "
                f"{self.store.dim}-d features",
                422,
            )
        # float64: a value beyond float32's range (1e39) is scaled, not turned into infinity
        return normalized(np.asarray(rows, np.float64).reshape(-1, self.store.dim), self.store.dim)

    # --- the gallery ---------------------------------------------------------------------
    def enrol(self, items: list[dict[str, Any]]) -> list[str]:
        """Store each item (``image`` or ``feature`` plus metadata); returns their ids once
        the store holds them durably."""
        if not items:
            raise RequestError("no items given", 422)
        entries: list[Entry] = []
        images: list[tuple[int, Any]] = []  # (item number, base64 image)
        rows: list[tuple[int, Any]] = []  # (item number, feature)
        for i, item in enumerate(items):
            has_image, has_feature = item.get("image") is not None, item.get("feature") is not None
            if has_image == has_feature:
                raise RequestError(f"item {i}: give either an image or a feature", 422)
            # (not `image or feature`: an empty image or feature is refused, not swapped for None)
            (images if has_image else rows).append(
                (i, item["image"] if has_image else item["feature"])
            )
            entry_id = uuid.uuid4().hex if item.get("id") is None else check_id(item["id"])
            meta = {k: item.get(k) for k in ("camera", "timestamp", "track_id")}
            entries.append(Entry(entry_id, labels=dict(item.get("labels") or {}), **meta))
        feats = np.empty((len(items), self.store.dim), np.float32)
        if images:
            feats[[i for i, _ in images]] = self.embed([data for _, data in images])
        if rows:
            feats[[i for i, _ in rows]] = self.features([data for _, data in rows])
        self.store.add(entries, feats)
        self.count("enrolled", len(entries))
        return [e.id for e in entries]

    def identify(
        self, images: list[str] | None, features: list[list[float]] | None, k: int
    ) -> list[dict[str, Any]]:
        """For each query: its ``k`` best matches and, with a threshold, which is the same
        person (``match``: the best hit at or above the threshold, else None)."""
        self.check_k(k)
        return self.results(self._search(self.queries(images, features), k))

    def check_k(self, k: int) -> None:
        if not 1 <= k <= self.limits.max_k:
            raise RequestError(f"k must be 1 to {self.limits.max_k}, got {k}", 422)

    def queries(self, images: list[str] | None, features: list[list[float]] | None) -> np.ndarray:
        """``(N, D)`` normalised queries from images (the model runs) or features."""
        if (images is None) == (features is None):
            raise RequestError("give either images or features", 422)
        if images is not None:
            return self.embed(images)
        if not features:
            raise RequestError("no features given", 422)
        return self.features(features)

    def search(self, queries: np.ndarray, k: int) -> asyncio.Future:
        """On the running event loop: a future of the ``k`` best hits of each query, searched
        together with the queries of other requests waiting at the same time
        (``batching.QueryBatcher``)."""
        return self._search.submit_async(queries, k)

    def results(self, hits: list[list[Hit]]) -> list[dict[str, Any]]:
        """``identify``'s answer for the hits of each query."""
        self.count("identified", len(hits))
        t = self.threshold.value if self.threshold else None
        results = []
        for row in hits:
            matches = [
                {**h.entry.to_dict(), "score": h.score, **_decision(h.score, t)} for h in row
            ]
            best = matches[0] if matches and matches[0]["same_person"] else None
            results.append({"matches": matches, "match": best["id"] if best else None})
        return results

    def get(self, entry_id: str) -> dict[str, Any]:
        entry = self.store.get(entry_id)
        if entry is None:
            raise RequestError(f"no gallery entry {entry_id!r}", 404)
        return entry.to_dict()

    def remove(self, entry_id: str) -> None:
        if not self.store.remove(entry_id):
            raise RequestError(f"no gallery entry {entry_id!r}", 404)
        self.count("removed", 1)

    def stats(self) -> dict[str, Any]:
        store = self.store
        return {
            "backend": store.name,
            "entries": len(store),
            "dim": store.dim,
            "arch": None if store.spec is None else store.spec.arch,
            "weights_sha256": None if store.spec is None else store.spec.weights_sha256 or None,
            "threshold": None if self.threshold is None else self.threshold.__dict__,
            "limits": self.limits.__dict__,
            "store": store.info(),
            "uptime_s": round(time.time() - self.started, 1),
            "counts": {**self.counts, "searches": self._search.calls},
        }
