"""Reading a config file: YAML (a safe loader that refuses duplicate keys and alias bombs),
TOML or JSON, bounded in size; what it holds as plain data, not yet validated."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from omnireid.errors import ConfigError

# A config is a few kilobytes; these bound what a hostile or mistaken file can cost to read
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000  # values of a YAML document once its aliases are expanded


def _yaml_loader(text: str, path: Path):
    """A YAML SafeLoader that refuses a key given twice in one mapping (PyYAML lets the last
    silently win) and a document whose aliases expand to more than ``MAX_YAML_VALUES``
    values (an alias bomb: a few hundred bytes that expand to gigabytes)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # << entries may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, list | dict):
                    continue  # unhashable: refused later as an unknown key
                if key in seen:
                    raise ConfigError(
                        f"{path}:{line}: {key!r} is given twice in one mapping (first at line "
                        f"{seen[key]}); keep one"
                    )
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, MAX_YAML_VALUES) > MAX_YAML_VALUES:
                raise ConfigError(
                    f"{path}: its YAML aliases expand to more than {MAX_YAML_VALUES} values "
                    "(an alias bomb, or an alias inside itself); refused"
                )
            return self.construct_document(node)

    return Loader(text)


def _expanded_size(root: Any, limit: int) -> int:
    """Nodes under ``root`` with every alias expanded (counted once per path to them), up to
    ``limit + 1``; a recursive alias counts as over the limit."""
    from yaml import MappingNode, SequenceNode

    def children(node: Any) -> list[Any]:
        if isinstance(node, SequenceNode):
            return list(node.value)
        if isinstance(node, MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    size: dict[int, int] = {}
    open_: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_.discard(key)
            size[key] = min(limit + 1, 1 + sum(size[id(c)] for c in children(node)))
        elif key in open_:
            return limit + 1  # a node inside itself: infinite
        elif key not in size:
            open_.add(key)
            stack.append((node, True))
            stack += [(c, False) for c in children(node) if id(c) not in size]
    return size[id(root)]


def _no_duplicates(path: Path):
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ConfigError(f"{path}: {key!r} is given twice in one object; keep one")
            out[key] = value
        return out

    return pairs


def _parse_file(path: Path) -> Any:
    """The mapping a YAML/TOML/JSON file holds; a syntax error, a key given twice or an
    oversized file names the file."""
    if path.suffix not in (".yaml", ".yml", ".toml", ".json"):
        raise ConfigError(f"{path}: expected .yaml, .yml, .toml or .json")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is {size} bytes: a config is a few kilobytes; refused")
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            loader = _yaml_loader(text, path)
            try:
                return loader.get_single_data() or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from e
            finally:
                loader.dispose()
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # Python 3.10
                import tomli as tomllib

            return tomllib.loads(text)
        return json.loads(text, object_pairs_hook=_no_duplicates(path))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not a text file ({e})") from e
    except RecursionError as e:
        raise ConfigError(f"{path} is nested too deeply to be a config") from e
    except ValueError as e:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path} could not be parsed: {e}") from e


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The sections of a config file as plain data (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    raw = _parse_file(path)
    if not isinstance(raw, dict) or not all(isinstance(v, dict | None) for v in raw.values()):
        raise ConfigError(f"{path}: expected sections of key: value pairs at the top level")
    return {k: dict(v or {}) for k, v in raw.items()}
