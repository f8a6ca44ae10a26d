"""OSNet model family: ``build(name, num_classes=..., **options)`` and ``list_models()``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from omnireid.models import osnet
from omnireid.models.osnet import OSNet

# The plain name -> builder table. Add a model by adding a line here.
MODELS: dict[str, Callable[..., OSNet]] = {
    "osnet_x1_0": osnet.osnet_x1_0,
    "osnet_x0_75": osnet.osnet_x0_75,
    "osnet_x0_5": osnet.osnet_x0_5,
    "osnet_x0_25": osnet.osnet_x0_25,
    "osnet_ibn_x1_0": osnet.osnet_ibn_x1_0,
    "osnet_ain_x1_0": osnet.osnet_ain_x1_0,
    "osnet_ain_x0_75": osnet.osnet_ain_x0_75,
    "osnet_ain_x0_5": osnet.osnet_ain_x0_5,
    "osnet_ain_x0_25": osnet.osnet_ain_x0_25,
}

# Keyword options every builder accepts (those of OSNet that builders do not fix themselves).
OPTIONS: tuple[str, ...] = tuple(
    name
    for name, p in inspect.signature(OSNet).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY or name == "layers"
)


def list_models() -> list[str]:
    """Names accepted by ``build``, sorted."""
    return sorted(MODELS)


def build(name: str, num_classes: int = 1000, **options) -> OSNet:
    """Build an architecture by name, e.g. ``build("osnet_x1_0", num_classes=751, streams=2)``.

    Options are ``OSNet``'s keyword arguments: the Table 5 ablations, ``layers``, ``feature_dim``...
    Unknown names and options raise with the list of what exists.
    """
    if name not in MODELS:
        raise KeyError(f"unknown architecture {name!r}; available: {', '.join(list_models())}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {name}; valid options: {list(OPTIONS)}")
    return MODELS[name](num_classes=num_classes, **options)


__all__ = ["MODELS", "OPTIONS", "OSNet", "build", "list_models"]
