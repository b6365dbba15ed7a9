"""Editable YAML files with errors that name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from citybrain.errors import ValidationError

Key = tuple[str | int, ...]


class CatalogError(ValidationError):
    """A catalog, calendar, routing or template file that cannot be used."""

    code = "CatalogError"


def dotted(path: Key) -> str:
    """Return a field path such as categories[3].limit_hours."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


class YamlDoc:
    """A parsed YAML document that remembers the line of every value."""

    def __init__(self, name: str, data: Any, lines: dict[Key, int]) -> None:
        self.name = name
        self.data = data
        self.lines = lines

    def error(self, path: Key, message: str) -> CatalogError:
        """Return an error naming file, line and field."""
        line = self.lines.get(path)
        while line is None and path:
            path = path[:-1]
            line = self.lines.get(path)
        field = dotted(path)
        return CatalogError(f"{self.name}:{line or 1}: {field}: {message}", field=field)

    def get(self, path: Key, kind: type | tuple[type, ...], default: Any = ..., parent: Any = None) -> Any:
        """Return the value at path (relative to the root) checked against kind; default when missing."""
        node: Any = self.data
        for i, part in enumerate(path):
            ok = (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node))
            if not ok:
                if default is not ...:
                    return default
                raise self.error(path[:i + 1], "is required")
            node = node[part]
        if node is None and default is not ...:
            return default
        if not isinstance(node, kind) or (isinstance(node, bool) and kind in (int, float, (int, float))):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(path, f"expected {names}, got {type(node).__name__} {node!r}")
        return node


def _lines(node: yaml.Node, path: Key, out: dict[Key, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _lines(v, (*path, k.value), out)
            out.setdefault((*path, k.value), k.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)


_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when libyaml is there


class _Loader(_Base):  # type: ignore[misc]
    """A safe loader that keeps dates as text, so a bad date is reported with its line, not raised."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in _Base.yaml_implicit_resolvers.items()}


def load_yaml(path: str | Path) -> YamlDoc:
    """Parse a YAML file; a syntax error becomes a CatalogError with its line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{p}: cannot read ({exc.strerror})", field="path") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise CatalogError(f"{p.name}:{line}: {getattr(exc, 'problem', None) or exc}", field="yaml") from None
    lines: dict[Key, int] = {}
    if node is not None:
        _lines(node, (), lines)
    # YAML keys like 2026-01-01 or numbers come back typed; lines use the scalar text, values the typed key
    return YamlDoc(p.name, data if data is not None else {}, lines)
