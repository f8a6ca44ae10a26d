"""The JSON bodies of the gallery API (pydantic models; FastAPI derives the OpenAPI schema).

Images travel as base64 strings (JPEG, PNG, WebP or BMP), features as lists of floats; nothing
else is accepted (unknown fields are refused). Every value a store keeps has a range it can
hold (SQLite and Qdrant integers are 64-bit): anything outside is a 422 here, never a 500 there.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from omnireid.serve.store import ID_MAX, ID_PATTERN

CAMERA_MAX = 2**31 - 1
# seconds, below it in magnitude: every integer there is exact in a float64 (2^53 + 1 would be
# stored as 2^53); nanoseconds since 1970 (~1.7e18) are out of range
TIMESTAMP_MAX = 2.0**53

Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Image = Annotated[
    str, Field(min_length=1, description="a base64-encoded JPEG, PNG, WebP or BMP image")
]
Feature = Annotated[list[float], Field(description="a feature vector (normalised by the server)")]


class Strict(BaseModel):
    """Unknown fields refused, and no value converted into another type: ``"5"`` or ``true``
    is not a ``k`` or a camera, ``"0.1"`` not a feature value (a JSON integer is a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Item(Strict):
    """One enrolment: an image or a feature, and what is known about it."""

    image: Image | None = None
    feature: Feature | None = None
    id: str | None = Field(
        None,
        max_length=ID_MAX,
        pattern=ID_PATTERN,
        description="1-64 letters, digits or _ . : -, not only dots; default: a new UUID",
    )
    camera: int | None = Field(None, ge=0, le=CAMERA_MAX, description="0-based camera id")
    timestamp: float | None = Field(
        None,
        allow_inf_nan=False,
        gt=-TIMESTAMP_MAX,
        lt=TIMESTAMP_MAX,
        description="seconds (any epoch), below 2^53 in magnitude",
    )
    track_id: str | None = Field(None, min_length=1, max_length=128)
    labels: dict[Label, Label] = Field(default_factory=dict, max_length=32)


class EnrolRequest(Strict):
    items: list[Item] = Field(min_length=1)


class EnrolResponse(BaseModel):
    ids: list[str]


class EmbedRequest(Strict):
    images: list[Image] = Field(min_length=1)


class EmbedResponse(BaseModel):
    dim: int
    features: list[list[float]]


class IdentifyRequest(Strict):
    """Queries as images or as features (not both), and how many matches to return."""

    images: list[Image] | None = None
    features: list[Feature] | None = None
    k: int = Field(5, ge=1)


class EntryOut(BaseModel):
    id: str
    camera: int | None
    timestamp: float | None
    track_id: str | None
    labels: dict[str, str]


class Match(EntryOut):
    score: float = Field(description="cosine similarity, higher is closer")
    same_person: bool | None = Field(description="score >= threshold; null without one")


class Result(BaseModel):
    matches: list[Match]
    match: str | None = Field(description="id of the best match if it is the same person")


class IdentifyResponse(BaseModel):
    results: list[Result]
    threshold: float | None


class Health(BaseModel):
    status: str
    entries: int
