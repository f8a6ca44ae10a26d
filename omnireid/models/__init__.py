"""The OSNet model family: ``build(name, num_classes=..., **options)``, ``list_models()``,
``load_for_inference(weights)`` for any checkpoint (the model comes back with its
``ModelSpec`` as ``model.spec``), ``list_models(pretrained=True)`` / ``load_pretrained(name)``
for the zoo."""

from omnireid.models.loader import load_for_inference, load_pretrained
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
from omnireid.models.spec import ModelSpec
from omnireid.models.zoo import ZooEntry, list_pretrained

__all__ = [
    "MODELS",
    "OPTIONS",
    "ModelSpec",
    "OSNet",
    "ZooEntry",
    "build",
    "build_from_spec",
    "list_models",
    "list_pretrained",
    "load_for_inference",
    "load_pretrained",
    "options_of",
    "read_spec",
]
