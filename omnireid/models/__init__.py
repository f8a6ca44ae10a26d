"""The OSNet model family: ``build(name, num_classes=..., **options)``, ``list_models()``,
``load_for_inference(weights)`` for any checkpoint, ``load_pretrained(name)`` for the zoo."""

from omnireid.models.loader import load_for_inference
from omnireid.models.osnet import OSNet
from omnireid.models.registry import (
    MODELS,
    OPTIONS,
    build,
    build_from_spec,
    list_models,
    options_of,
    read_spec,
)
from omnireid.models.zoo import load_pretrained

__all__ = [
    "MODELS",
    "OPTIONS",
    "OSNet",
    "build",
    "build_from_spec",
    "list_models",
    "load_for_inference",
    "load_pretrained",
    "options_of",
    "read_spec",
]
