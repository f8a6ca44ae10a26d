"""The value checks of a config: each setting's type (``Annotated`` with a ``Range`` or a
``Pattern``, a ``Literal`` of choices) and the coercion and check of a value against it."""

from __future__ import annotations

import math
import re
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from omnireid.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """The legal values of a numeric setting: ``lo <= v <= hi`` (``<`` where the end is open),
    and, for floats, finite. Declared on the field's type: ``Annotated[int, Range(1)]``."""

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False
    open_hi: bool = False

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.open_hi else value <= self.hi)

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.open_lo else "[", ")" if self.open_hi else "]"
            return f"within {left}{self.lo}, {self.hi}{right}"
        if self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {self.lo}"
        return f"{'<' if self.open_hi else '<='} {self.hi}"


@dataclass(frozen=True)
class Pattern:
    """A text setting that must match ``regex`` (whole), described as ``legal``."""

    regex: str
    legal: str


# The ranged types of the settings (``sections``). Every int and float field carries a Range
# (a test checks it), every choice is a Literal: a value outside is a ConfigError naming the
# setting and what is legal, wherever the config comes from (a file, an override,
# dataclasses.replace)
Count = Annotated[int, Range(1)]  # >= 1
Natural = Annotated[int, Range(0)]  # >= 0
Positive = Annotated[float, Range(0, open_lo=True)]  # > 0
NonNegative = Annotated[float, Range(0)]  # >= 0
Share = Annotated[float, Range(0, 1)]  # a fraction
Seed = Annotated[int, Range(0, 2**32 - 1)]  # what NumPy's generator takes
Pixels = Annotated[int, Range(16, 4096)]  # OSNet downsamples by 16: smaller inputs vanish
Device = Annotated[str, Pattern(r"cpu|cuda(:\d+)?", "cpu, cuda or cuda:N")]


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """The field types of ``cls``, resolved once per class."""
    if cls not in _FIELD_TYPES:
        _FIELD_TYPES[cls] = get_type_hints(cls, include_extras=True)
    return _FIELD_TYPES[cls]


def _optional(hint: Any) -> tuple[Any, bool]:
    """``(hint without None, whether None is allowed)``."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(get_args(hint))
    return hint, False


def _base(hint: Any) -> tuple[Any, list[Any]]:
    """``(the plain type, the Range/Pattern annotations on it)``."""
    if get_origin(hint) is Annotated:
        plain, *marks = get_args(hint)
        return plain, marks
    return hint, []


def coerce_value(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` names (an int where a float is wanted becomes one);
    a value of another type is a ConfigError naming ``where``. Ranges and choices are checked
    when the section is made (``_check``)."""
    hint, nullable = _optional(hint)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    hint, _ = _base(hint)
    origin = get_origin(hint)
    if origin is Literal:
        return value  # checked against the choices by _check, with the choices named
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of key: value, got {value!r}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(coerce_value(v, get_args(hint)[0], where) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (bool, int, float, str):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def check_value(value: Any, hint: Any, where: str) -> None:
    """Refuse a value outside what ``hint`` declares legal (a Range, a Literal's choices, a
    Pattern), naming the setting ``where`` and the legal values."""
    hint, nullable = _optional(hint)
    if value is None and nullable:
        return
    hint, marks = _base(hint)
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if value not in choices or isinstance(value, bool):
            note = " (YAML reads off/no/yes/on unquoted as booleans: quote it)" * isinstance(
                value, bool
            )
            raise ConfigError(f"{where} must be one of {list(choices)}, got {value!r}{note}")
        return
    if get_origin(hint) is tuple:
        for item in value:
            check_value(item, get_args(hint)[0], where)
        return
    for mark in marks:
        if isinstance(mark, Range):
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not numeric or not mark.holds(value):
                kind = "an integer" if hint is int else "a finite number"
                raise ConfigError(f"{where} must be {kind} {mark}, got {value!r}")
        elif isinstance(mark, Pattern) and not (
            isinstance(value, str) and re.fullmatch(mark.regex, value)
        ):
            raise ConfigError(f"{where} must be {mark.legal}, got {value!r}")
