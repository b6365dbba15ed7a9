"""Component manifests: the one place that says which components a node runs, mounts and offers on the command line.

Every component package has a `manifest.py` holding `MANIFEST = Component(...)`: its setup function and where it
comes in the start order, the components it needs set up before it, its HTTP mount and where that comes, its
`citybrain` sub-commands (with the one-line help that `citybrain --help` shows), and a line for the docs. From the
manifests are derived:

- `setups()`: what `CityBrain` sets up, in order (`runtime.COMPONENTS`);
- `mounts()`: what `create_app` mounts, in order (`api.app.EXTENSIONS`);
- `commands()`: the component sub-commands of `citybrain`, imported only when one runs (`citybrain.cli`);
- `markdown_table()`: the component table of docs/architecture.md (`scripts/components.py` writes and checks it).

The manifests are found by walking citybrain's subpackages (`pkgutil`) and executing each `manifest.py` on its
own, without importing the package it is in: a package's `__init__` may pull in numpy, scipy or nats, and the
command line has to start fast. So a manifest imports nothing but this module. `tests/test_manifests.py` fails
when a manifest and the code (or the docs) disagree.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass
from typing import Any

PACKAGE = "citybrain"
MANIFEST_MODULE = "manifest"


class ManifestError(Exception):
    """A manifest that cannot be read, or manifests that contradict each other."""


@dataclass(frozen=True)
class Command:
    """A `citybrain <name>` sub-command of a component, imported only when it runs.

    `target` is "module:attribute" naming a `typer.Typer` (the sub-command is that group, `add_typer(obj,
    name=name)`) or a function (the sub-command is that function, `command(name)(obj)`). With `merged`, `target`
    is a Typer added without a name (`add_typer(obj)`): its commands join the top level and `name` is one of them.
    `help` is what `citybrain --help` shows for it without importing the module: the command's own first line
    (the drift test compares them). `order` places it in `citybrain --help`, after the core commands.
    """

    name: str
    target: str
    help: str
    order: int
    merged: bool = False


@dataclass(frozen=True)
class Component:
    """A component's manifest: what the runtime sets up, the HTTP app mounts, the CLI offers and the docs say.

    - `name`: the package, `citybrain.<name>`.
    - `summary`, `reads`, `writes`: its row in the docs' component table.
    - `order`: its place: setups run in this order, the docs table lists in it (a component without a setup
      still has a place in the table).
    - `setup`: "module:function" of `async def setup(rt)` (or None).
    - `needs`: components whose setup must have run before this one's (it uses what they register).
    - `provides`: the ports (`citybrain.ports.Ports`) its setup sets.
    - `http`, `http_order`: "module:function" of `def mount(app, rt)` and its place among the mounts (routes
      match in mount order; the middleware added last is the outermost).
    - `cli`: its `citybrain` sub-commands.
    """

    name: str
    summary: str
    order: int
    setup: str | None = None
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    http: str | None = None
    http_order: int | None = None
    cli: tuple[Command, ...] = ()
    reads: str = ""
    writes: str = ""


# targets -----------------------------------------------------------------------------------------------------------
def split_target(target: str, default: str) -> tuple[str, str]:
    """Return (module, attribute) of "module:attribute", or of a bare "module" meaning its `default` attribute."""
    module, _, attr = target.partition(":")
    return module, attr or default


def short_target(target: str, default: str) -> str:
    """Return "module" when the target names the module's `default` attribute, else "module:attribute"."""
    module, attr = split_target(target, default)
    return module if attr == default else f"{module}:{attr}"


def resolve(target: str, default: str) -> Any:
    """Import a target's module and return the attribute it names ("module" alone names `default`)."""
    module, attr = split_target(target, default)
    return getattr(importlib.import_module(module), attr)


# discovery ---------------------------------------------------------------------------------------------------------
def package_dirs() -> dict[str, list[str]]:
    """Return citybrain's subpackages (name -> search locations), found without importing any of them."""
    root = sys.modules[PACKAGE].__path__ if PACKAGE in sys.modules else importlib.import_module(PACKAGE).__path__
    out: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(root):
        if not info.ispkg:
            continue
        spec = importlib.machinery.PathFinder.find_spec(f"{PACKAGE}.{info.name}", list(root))
        if spec is not None and spec.submodule_search_locations is not None:
            out[info.name] = list(spec.submodule_search_locations)
    return out


def load_manifest(package: str, locations: list[str] | None = None) -> Component | None:
    """Return the manifest of `citybrain.<package>` (None without a manifest.py), not importing the package."""
    fullname = f"{PACKAGE}.{package}.{MANIFEST_MODULE}"
    module = sys.modules.get(fullname)
    if module is None:
        if locations is None:
            locations = package_dirs().get(package)
            if locations is None:
                return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, locations)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)  # not put in sys.modules: its package is not imported
        except Exception as exc:
            raise ManifestError(f"{fullname}: {exc}") from exc
    manifest = getattr(module, "MANIFEST", None)
    if not isinstance(manifest, Component):
        raise ManifestError(f"{fullname}: no MANIFEST = Component(...)")
    if manifest.name != package:
        raise ManifestError(f"{fullname}: MANIFEST.name is {manifest.name!r}, the package is {package!r}")
    return manifest


@functools.cache
def manifests() -> tuple[Component, ...]:
    """Return every component's manifest, in component order (checked for contradictions)."""
    found = [m for name, where in sorted(package_dirs().items()) if (m := load_manifest(name, where)) is not None]
    found.sort(key=lambda m: m.order)
    check(found)
    return tuple(found)


def check(found: list[Component]) -> None:
    """Raise ManifestError for manifests that contradict each other (the drift test checks them against the code)."""
    by_name = {m.name: m for m in found}
    problems: list[str] = []

    def unique(what: str, values: list[Any]) -> None:
        seen = [v for i, v in enumerate(values) if v in values[:i]]
        if seen:
            problems.append(f"{what} used twice: {sorted(set(map(str, seen)))}")

    unique("component order", [m.order for m in found])
    unique("http_order", [m.http_order for m in found if m.http])
    unique("command name", [c.name for m in found for c in m.cli])
    unique("command order", [c.order for m in found for c in m.cli])
    for m in found:
        if (m.http is None) != (m.http_order is None):
            problems.append(f"{m.name}: http and http_order go together")
        for need in m.needs:
            other = by_name.get(need)
            if other is None or other.setup is None:
                problems.append(f"{m.name} needs {need!r}, which is no component with a setup")
            elif m.setup is None or other.order >= m.order:
                problems.append(f"{m.name} needs {need!r}, so it must be set up after it (order {other.order})")
    if problems:
        raise ManifestError("; ".join(problems))


def component(name: str) -> Component:
    """Return one component's manifest by name."""
    for m in manifests():
        if m.name == name:
            return m
    raise KeyError(name)


# what is derived ---------------------------------------------------------------------------------------------------
def setups() -> list[str]:
    """The setup targets the runtime runs, in order ("citybrain.x" for "citybrain.x:setup")."""
    return [short_target(m.setup, "setup") for m in manifests() if m.setup]


def mounts() -> list[str]:
    """The mount targets the HTTP app mounts, in order ("citybrain.x.api" for "citybrain.x.api:mount")."""
    mounted = sorted((m for m in manifests() if m.http), key=lambda m: m.http_order or 0)
    return [short_target(m.http, "mount") for m in mounted if m.http]


def commands() -> list[Command]:
    """Every component sub-command of `citybrain`, in `citybrain --help` order."""
    return sorted((c for m in manifests() for c in m.cli), key=lambda c: c.order)


def markdown_table() -> str:
    """The component table of docs/architecture.md, generated from the manifests."""

    def wiring(m: Component) -> str:
        bits = []
        if m.setup:
            after = f" after {', '.join(f'`{n}`' for n in m.needs)}" if m.needs else ""
            bits.append(f"setup {setups().index(short_target(m.setup, 'setup')) + 1}{after}")
        if m.http:
            bits.append(f"HTTP {mounts().index(short_target(m.http, 'mount')) + 1}")
        bits += [f"`citybrain {c.name}`" for c in m.cli]
        return ", ".join(bits) or "—"

    rows = ["| component | what it does | reads | writes / publishes | wiring |", "|---|---|---|---|---|"]
    rows += [f"| `{m.name}` | {m.summary} | {m.reads or '—'} | {m.writes or '—'} | {wiring(m)} |" for m in manifests()]
    return "\n".join(rows) + "\n"
