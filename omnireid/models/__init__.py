"""OSNet model family: ``build(name, num_classes=..., **options)`` and ``list_models()``."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
    Unknown names and options raise with the list of what exists. A name ending in ``.json`` is
    a child-architecture spec file written by ``omnireid search`` (see ``build_from_spec``).
    """
    if name.endswith(".json"):
        return build_from_spec(read_spec(name), num_classes, **options)
    if name not in MODELS:
        raise KeyError(f"unknown architecture {name!r}; available: {', '.join(list_models())}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for {name}; valid options: {list(OPTIONS)}")
    return MODELS[name](num_classes=num_classes, **options)


SPEC_KEYS: tuple[str, ...] = ("base", "stem_norm", "block_norms", "feature_dim")


def read_spec(path: str | Path) -> dict[str, Any]:
    """Read a child-architecture spec (JSON) written by ``omnireid search``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"architecture spec not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a JSON architecture spec ({e})") from e


def build_from_spec(spec: Mapping[str, Any], num_classes: int = 1000, **options) -> OSNet:
    """Build a searched child: ``{"base": "osnet_x0_25", "stem_norm": "in", "block_norms":
    [["in", "in"], ["none", "in"], ["in", "none"]]}`` -> ``build(base, block_norms=...)``.

    ``base`` must be a plain width builder (it sets neither ``block_norms`` nor ``stem_norm``);
    ``feature_dim`` is optional; other keys (``format``, ``search``) are notes and ignored.
    """
    missing = [k for k in ("base", "block_norms") if k not in spec]
    if missing:
        raise ValueError(f"architecture spec lacks {missing}; expected keys {list(SPEC_KEYS)}")
    base = spec["base"]
    if base not in MODELS or "_ain_" in base or "_ibn_" in base:
        plain = [n for n in list_models() if "_ain_" not in n and "_ibn_" not in n]
        raise ValueError(f"spec base must be one of {plain}, got {base!r}")
    spec_options = {
        "block_norms": tuple(tuple(stage) for stage in spec["block_norms"]),
        "stem_norm": spec.get("stem_norm", "bn"),
    }
    if "feature_dim" in spec:
        spec_options["feature_dim"] = int(spec["feature_dim"])
    return build(base, num_classes, **{**spec_options, **options})


__all__ = [
    "MODELS",
    "OPTIONS",
    "OSNet",
    "build",
    "build_from_spec",
    "list_models",
    "read_spec",
]
