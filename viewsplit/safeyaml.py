"""YAML for run configs, read safely: no Python objects (a ``SafeLoader``), no duplicate keys (YAML itself would
keep the last one without a word) and no "alias bombs" (a few lines whose aliases expand to billions of values)."""
from __future__ import annotations

from typing import Any

import yaml

from .errors import ConfigError, quote


class DuplicateKey(yaml.YAMLError):
    """A mapping that gives the same key twice (YAML itself would keep the last one without a word)."""


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                dup = key in seen
            except TypeError:   # an unhashable key: SafeLoader's own error names it
                break
            if dup:
                mark = key_node.start_mark
                raise DuplicateKey(f"duplicate key {quote(key)} (line {mark.line + 1}); each key may appear once")
            seen.add(key)
        return super().construct_mapping(node, deep)


#: the most values a YAML text may expand to (a config holds a few hundred; aliases can make billions)
MAX_YAML_VALUES = 100_000
#: the deepest nesting a YAML text may have (a config nests 4 deep)
MAX_YAML_DEPTH = 50


def read_yaml(text: str, where: str) -> Any:
    """Parse YAML safely (no Python objects): refuses duplicate keys and texts whose aliases expand to more than
    :data:`MAX_YAML_VALUES` values (an "alias bomb")."""
    too_deep = ConfigError(f"{where}: the YAML nests lists or mappings more than {MAX_YAML_DEPTH} deep")
    try:
        value = yaml.load(text, Loader=_StrictLoader)   # _StrictLoader is a SafeLoader
    except RecursionError:
        raise too_deep from None
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(v: Any, depth: int = 0) -> int:
        if not isinstance(v, (dict, list)):
            return 1
        if depth > MAX_YAML_DEPTH:
            raise too_deep
        if id(v) in open_:
            raise ConfigError(f"{where}: a YAML alias refers to a mapping or list that contains it")
        if id(v) not in sizes:
            open_.add(id(v))
            items = [*v.keys(), *v.values()] if isinstance(v, dict) else v
            sizes[id(v)] = min(1 + sum(size(x, depth + 1) for x in items), MAX_YAML_VALUES + 1)
            open_.discard(id(v))
        return sizes[id(v)]

    if size(value) > MAX_YAML_VALUES:
        raise ConfigError(f"{where}: the YAML expands to more than {MAX_YAML_VALUES} values (through aliases); "
                          "a run config holds a few hundred")
    return value
