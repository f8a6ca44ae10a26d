"""The architecture registry: ``build(name, num_classes=..., **options)`` and ``list_models()``.

A plain dict ``name -> builder``. Each builder takes the keyword options of ``OSNet`` that it
does not fix itself (``options_of(name)``): the plain ``osnet_x*`` builders take them all, the
instance-normalised ``osnet_ibn_*``/``osnet_ain_*`` fix ``layers``, ``block_norms`` and
``stem_norm`` (their blocks are the paper's). ``build`` checks the options against the builder
before building, so a wrong option is a ``UsageError`` naming the builder and what it takes.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omnireid.errors import JSON_ERRORS, UsageError
from omnireid.models import osnet
from omnireid.models.osnet import IN_FIXED, OSNet
from omnireid.models.zoo import zoo_names

# The plain name -> builder table. Add a model by adding a line here.
MODELS: dict[str, Callable[..., OSNet]] = {
    "osnet_x1_0": osnet.osnet_x1_0,
    "osnet_x0_75": osnet.osnet_x0_75,
    "osnet_x0_5": osnet.osnet_x0_5,
    "osnet_x0_25": osnet.osnet_x0_25,
    "osnet_ibn_x1_0": osnet.osnet_ibn_x1_0,
    "osnet_ibn_x0_25": osnet.osnet_ibn_x0_25,  # beyond the reference's list
    "osnet_ain_x1_0": osnet.osnet_ain_x1_0,
    "osnet_ain_x0_75": osnet.osnet_ain_x0_75,
    "osnet_ain_x0_5": osnet.osnet_ain_x0_5,
    "osnet_ain_x0_25": osnet.osnet_ain_x0_25,
}

# Keyword options of OSNet that a builder may pass on (those builders do not choose themselves).
OPTIONS: tuple[str, ...] = tuple(
    name
    for name, p in inspect.signature(OSNet).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY or name == "layers"
)


def list_models(pretrained: bool = False) -> list[str]:
    """Names accepted by ``build``, sorted; with ``pretrained``, the names of the trained
    models shipped in the zoo instead (``models.zoo.list_pretrained`` gives their specs and
    cards; load one with ``load_pretrained(name)`` or ``--weights zoo:NAME``)."""
    if pretrained:
        return zoo_names()
    return sorted(MODELS)


def options_of(name: str) -> tuple[str, ...]:
    """The keyword options builder ``name`` accepts."""
    _check_name(name)
    fixed = IN_FIXED if ("_ain_" in name or "_ibn_" in name) else ()
    return tuple(o for o in OPTIONS if o not in fixed)


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise UsageError(f"unknown architecture {name!r}; available: {', '.join(list_models())}")


def build(name: str, num_classes: int = 1000, **options: Any) -> OSNet:
    """Build an architecture by name, e.g. ``build("osnet_x1_0", num_classes=751, streams=2)``.

    Options are those of ``options_of(name)``: the Table 5 ablations, ``feature_dim``, and for
    the plain builders ``layers``/``block_norms``/``stem_norm``. An unknown name or an option
    the builder does not take raises ``UsageError`` listing what exists. A name ending in
    ``.json`` is a child-architecture spec written by the IN search (``build_from_spec``).
    """
    if name.endswith(".json"):
        model = build_from_spec(read_spec(name), num_classes, **options)
        model.arch = name
        return model
    valid = options_of(name)
    wrong = sorted(set(options) - set(valid))
    if wrong:
        fixed = [o for o in wrong if o in IN_FIXED]
        why = f" ({name} fixes {', '.join(fixed)}: its blocks are the paper's)" if fixed else ""
        raise UsageError(
            f"{name} does not take option(s) {', '.join(wrong)}{why}; it takes: {', '.join(valid)}"
        )
    model = MODELS[name](num_classes=num_classes, **options)
    model.arch = name
    return model


SPEC_KEYS: tuple[str, ...] = ("base", "stem_norm", "block_norms", "feature_dim")


def read_spec(path: str | Path) -> dict[str, Any]:
    """Read a child-architecture spec (JSON) written by ``omnireid search``."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"architecture spec not found: {path}")
    try:
        return json.loads(path.read_text())
    except JSON_ERRORS as e:
        raise UsageError(f"{path}: not a JSON architecture spec ({e})") from e


def build_from_spec(spec: Mapping[str, Any], num_classes: int = 1000, **options) -> OSNet:
    """Build a searched child: ``{"base": "osnet_x0_25", "stem_norm": "in", "block_norms":
    [["in", "in"], ["none", "in"], ["in", "none"]]}`` -> ``build(base, block_norms=...)``.

    ``base`` must be a plain width builder (it sets neither ``block_norms`` nor ``stem_norm``);
    ``feature_dim`` is optional; other keys (``format``, ``search``) are notes and ignored.
    """
    missing = [k for k in ("base", "block_norms") if k not in spec]
    if missing:
        raise UsageError(f"architecture spec lacks {missing}; expected keys {list(SPEC_KEYS)}")
    base = spec["base"]
    if base not in MODELS or "_ain_" in base or "_ibn_" in base:
        plain = [n for n in list_models() if "_ain_" not in n and "_ibn_" not in n]
        raise UsageError(f"spec base must be one of {plain}, got {base!r}")
    spec_options = {
        "block_norms": tuple(tuple(stage) for stage in spec["block_norms"]),
        "stem_norm": spec.get("stem_norm", "bn"),
    }
    if "feature_dim" in spec:
        spec_options["feature_dim"] = int(spec["feature_dim"])
    return build(base, num_classes, **{**spec_options, **options})
