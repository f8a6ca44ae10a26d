"""From plain data to a ``Config``: task defaults, command-line overrides and flags, the
validation of every section; and back to plain data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, get_type_hints

from omnireid.config.checks import coerce_value, field_types
from omnireid.config.files import read_config_file
from omnireid.config.sections import Config
from omnireid.errors import ConfigError
from omnireid.recipes import ADAPT


def _section(cls: type, values: dict[Any, Any], name: str) -> Any:
    """The section ``cls`` (named ``name`` in messages) of ``values``, each coerced to its type."""
    hints = field_types(cls)
    unknown = sorted(str(k) for k in set(values) - set(hints))
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {unknown}; valid: {sorted(hints)}")
    return cls(**{k: coerce_value(v, hints[k], f"{name}.{k}") for k, v in values.items()})


# train.task -> the settings it defaults to instead of the sections' own defaults
TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {"adapt": ADAPT.as_config()}


def with_task_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the defaults of its ``train.task`` (``TASK_DEFAULTS``) under every key it
    does not set itself."""
    train = raw.get("train")
    task = train.get("task") if isinstance(train, dict) else None
    defaults = TASK_DEFAULTS.get(task) if isinstance(task, str) else None
    if not defaults:
        return raw
    merged = dict(raw)
    for section, values in defaults.items():
        given = merged.get(section)
        if given is None or isinstance(given, dict):
            merged[section] = {**values, **(given or {})}
    return merged


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Validate a nested mapping (sections as in ``Config``) into a ``Config``: unknown keys,
    wrong types and values outside a setting's legal range are ``ConfigError``s naming it.
    Keys ``raw`` does not set take their task's defaults (``TASK_DEFAULTS``), else the
    sections' own."""
    raw = with_task_defaults(raw)
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = sorted(str(k) for k in set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; valid: {sorted(sections)}")
    hints = get_type_hints(Config)
    return Config(**{k: _section(hints[k], raw.get(k) or {}, k) for k in sections})


def parse_value(text: str) -> Any:
    """A command-line override value: JSON when it parses (numbers, lists, true/null), else text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def load_config(
    path: str | Path | None,
    overrides: list[str] | None = None,
    *,
    flags: dict[str, tuple[str, Any]] | None = None,
) -> Config:
    """Read a YAML/TOML/JSON file (or use defaults) and apply ``section.key=value`` overrides.

    ``flags`` maps a key to ``(command-line flag, value)`` for flags that set it (``--task``
    sets ``train.task``): the value applies, and a file or override that sets the key to
    something else is refused instead of one of them silently winning.
    """
    raw: dict[str, Any] = read_config_file(path) if path is not None else {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        section, name = key.split(".", 1)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"override {item!r}: {section} is not a section")
        raw[section][name] = parse_value(value)
    for key, (flag, value) in (flags or {}).items():
        section, name = key.split(".", 1)
        given = raw.get(section, {}).get(name, value)
        if given != value:
            where = f" in {path}" if path is not None else ""
            raise ConfigError(f"{flag} {value} contradicts {key}: {given}{where}; give one")
        raw.setdefault(section, {})[name] = value
    return config_from_dict(raw)


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain data (lists for tuples), for saving beside a run."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
