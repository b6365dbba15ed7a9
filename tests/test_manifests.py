"""The component manifests are the one list: this test fails when the code, the CLI or the docs drift from them.

Each component package declares `MANIFEST = Component(...)` in its `manifest.py` (citybrain/components.py). The
runtime's component list, the HTTP mounts, the `citybrain` sub-commands and the docs' component table are derived
from the manifests; here we check that every setup, mount, router and sub-command in the code is declared, that
every declaration points at something real, that a setup's use of other components is declared in `needs`, that
`citybrain --help` shows the commands' own help without importing them, and that the docs are current.
"""

from __future__ import annotations

import ast
import contextvars
import importlib
import inspect
import pkgutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import typer.testing
from fastapi import APIRouter

import citybrain
from citybrain import components as comp
from citybrain.components import Command, Component, ManifestError
from citybrain.ports import Ports

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "citybrain"

# Functions named setup/mount that no manifest names, because a declared one calls them.
INTERNAL = {
    "citybrain.trust.auth:setup": "called by citybrain.trust:setup",
    "citybrain.ngsi.api:mount": "called by citybrain.ngsi:mount",
    "citybrain.federation.component:mount": "the package's own mount, calling citybrain.federation.api:mount",
}


def all_modules() -> list[Any]:
    """Import every module of citybrain (not __main__) and return them."""
    out = []
    for info in pkgutil.walk_packages(citybrain.__path__, "citybrain."):
        if not info.name.endswith("__main__"):
            out.append(importlib.import_module(info.name))
    return out


def targets(kind: str) -> dict[int, str]:
    """id(object) -> target, for every setup / http / cli target of the manifests."""
    out: dict[int, str] = {}
    for m in comp.manifests():
        if kind == "setup" and m.setup:
            out[id(comp.resolve(m.setup, "setup"))] = m.setup
        if kind == "http" and m.http:
            out[id(comp.resolve(m.http, "mount"))] = m.http
        if kind == "cli":
            for c in m.cli:
                out[id(comp.resolve(c.target, "app"))] = c.target
    return out


# the manifests themselves -----------------------------------------------------------------------------------------
def test_every_manifest_file_is_found_and_names_its_package() -> None:
    on_disk = sorted(p.parent.name for p in PACKAGE.glob("*/manifest.py"))
    assert sorted(m.name for m in comp.manifests()) == on_disk
    assert [m.order for m in comp.manifests()] == sorted(m.order for m in comp.manifests())


def test_manifests_import_nothing_but_the_components_module() -> None:
    """A manifest is read without importing its package, so it must not import anything heavy either."""
    for path in PACKAGE.glob("*/manifest.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                pytest.fail(f"{path}: import {', '.join(a.name for a in node.names)}")
            if isinstance(node, ast.ImportFrom):
                assert node.module in ("citybrain.components", "__future__"), f"{path}: from {node.module} import"


def test_reading_the_manifests_imports_no_component() -> None:
    code = ("import sys; from citybrain import components as c; c.manifests(); "
            "print([m for m in sys.modules if m.startswith('citybrain')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert sorted(eval(out)) == ["citybrain", "citybrain.components"]  # noqa: S307 - our own repr


def test_contradicting_manifests_are_refused() -> None:
    a = Component(name="a", summary="", order=1, setup="x:setup")
    comp.check([a, Component(name="b", summary="", order=2, setup="y:setup", needs=("a",))])  # fine
    cases = {
        "needs 'a', so it must be set up after it": [a, Component(name="b", summary="", order=0, setup="y", needs=("a",))],
        "needs 'zzz'": [a, Component(name="b", summary="", order=2, setup="y", needs=("zzz",))],
        "component order used twice": [a, Component(name="b", summary="", order=1)],
        "http and http_order go together": [Component(name="b", summary="", order=2, http="x:mount")],
        "command name used twice": [Component(name="b", summary="", order=2, cli=(Command("x", "m:f", "h", 1),)),
                                    Component(name="c", summary="", order=3, cli=(Command("x", "m:g", "h", 2),))],
    }
    for message, manifests in cases.items():
        with pytest.raises(ManifestError, match=message):
            comp.check(manifests)


def test_a_broken_manifest_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "manifest.py").write_text("MANIFEST = 42\n")
    with pytest.raises(ManifestError, match="citybrain.nowhere.manifest: no MANIFEST"):
        comp.load_manifest("nowhere", [str(tmp_path)])
    (tmp_path / "manifest.py").write_text("from citybrain.components import Component\n"
                                          "MANIFEST = Component(name='elsewhere', summary='', order=1)\n")
    with pytest.raises(ManifestError, match="the package is 'nowhere'"):
        comp.load_manifest("nowhere", [str(tmp_path)])


# every target exists and is of the right kind -----------------------------------------------------------------------
def test_every_target_exists() -> None:
    for m in comp.manifests():
        if m.setup:
            setup = comp.resolve(m.setup, "setup")
            assert inspect.iscoroutinefunction(setup), f"{m.name}: {m.setup} is not an async function"
            assert len(inspect.signature(setup).parameters) == 1, f"{m.name}: {m.setup} is not setup(rt)"
        if m.http:
            mount = comp.resolve(m.http, "mount")
            assert callable(mount) and not inspect.iscoroutinefunction(mount), f"{m.name}: {m.http}"
            assert len(inspect.signature(mount).parameters) == 2, f"{m.name}: {m.http} is not mount(app, rt)"
        merged: dict[str, set[str]] = defaultdict(set)
        for c in m.cli:
            target = comp.resolve(c.target, "app")
            assert isinstance(target, typer.Typer) or inspect.isfunction(target), f"{m.name}: {c.target}"
            if c.merged:
                assert isinstance(target, typer.Typer), f"{m.name}: merged {c.target} is no Typer"
                merged[c.target].add(c.name)
        for target, names in merged.items():  # a Typer whose commands join the top level: all of them
            assert set(typer.main.get_group(comp.resolve(target, "app")).commands) == names, target


def test_every_setup_mount_router_and_sub_command_in_the_code_is_declared() -> None:
    """A package with a setup(), mount(), router or typer app that no manifest declares fails here."""
    setups, mounts, clis = targets("setup"), targets("http"), targets("cli")
    mounted_packages = {comp.split_target(m.http, "mount")[0].split(".")[1] for m in comp.manifests() if m.http}
    from citybrain.cli import app as root

    reachable: set[int] = {id(root)}
    typers = [comp.resolve(t, "app") for t in clis.values()]
    typers = [t for t in typers if isinstance(t, typer.Typer)] + [root]
    registered: set[int] = set()
    while typers:
        t = typers.pop()
        reachable.add(id(t))
        registered |= {id(c.callback) for c in t.registered_commands}
        typers += [g.typer_instance for g in t.registered_groups if g.typer_instance is not None]
    problems = []
    for module in all_modules():
        name = module.__name__
        for attr, obj in vars(module).items():
            where = f"{name}:{attr}"
            if inspect.isfunction(obj) and obj.__module__ == name and attr in ("setup", "mount") and (
                    len(inspect.signature(obj).parameters) == (1 if attr == "setup" else 2)):  # setup(rt), mount(app, rt)
                declared = setups if attr == "setup" else mounts
                if id(obj) not in declared and where not in INTERNAL:
                    problems.append(f"{where} is in no manifest")
            if isinstance(obj, APIRouter) and name.split(".")[1] not in mounted_packages | {"api"}:
                problems.append(f"{where}: a router in a package whose manifest mounts nothing")
            if isinstance(obj, typer.Typer) and id(obj) not in reachable:
                problems.append(f"{where}: a typer app no manifest (or its groups) wires")
            if (inspect.isfunction(obj) and obj.__module__ == name and name.endswith(".cli")
                    and any(isinstance(p.default, typer.models.ParameterInfo)
                            for p in inspect.signature(obj).parameters.values())
                    and id(obj) not in registered and id(obj) not in clis):
                problems.append(f"{where}: a command function that is neither in a typer app nor in a manifest")
    assert not problems, "\n".join(problems)


# the runtime ---------------------------------------------------------------------------------------------------------
def test_the_runtime_sets_up_the_manifests_in_order() -> None:
    from citybrain.config import Settings
    from citybrain.runtime import COMPONENTS, CityBrain

    assert COMPONENTS == comp.setups()
    assert CityBrain(Settings(store=":memory:")).components == comp.setups()
    only = ["citybrain.model.commands"]  # the override tests, drills and tenants use
    assert CityBrain(Settings(store=":memory:"), components=only).components == only


CONDITIONAL_PORTS = {"mqtt"}  # set only when the node is configured for it (CITYBRAIN_MQTT)


async def test_needs_are_what_each_setup_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every component, recording which service each setup reads and which component registered it.

    A setup that reads a port (`rt.ports.cases`) another component set must declare that component in `needs`;
    a setup that looks for an optional one (`rt.ports.find`, `has`) must come after whoever provides it; each
    component sets exactly the ports its manifest `provides`. Reads made by
    tasks a setup spawned are not counted for the setup that happens to run at the time.
    """
    import citybrain.runtime as runtime
    from citybrain.config import Settings

    running: contextvars.ContextVar[str | None] = contextvars.ContextVar("running", default=None)
    now: list[str | None] = [None]
    provided: dict[str, str] = {}
    hard: dict[str, set[str]] = defaultdict(set)
    soft: dict[str, set[str]] = defaultdict(set)

    def me() -> str | None:
        return now[0] if now[0] is not None and running.get() == now[0] else None

    class Services(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            if (who := me()) is not None:
                provided.setdefault(key, who)
            super().__setitem__(key, value)

        def setdefault(self, key: str, value: Any = None) -> Any:
            if (who := me()) is not None and key not in self:
                provided.setdefault(key, who)
            return super().setdefault(key, value)

        def __getitem__(self, key: str) -> Any:
            if (who := me()) is not None:
                hard[who].add(key)
            return super().__getitem__(key)

        def get(self, key: str, default: Any = None) -> Any:
            if (who := me()) is not None:
                soft[who].add(key)
            return super().get(key, default)

        def __contains__(self, key: object) -> bool:
            if (who := me()) is not None and isinstance(key, str):
                soft[who].add(key)
            return super().__contains__(key)

    names = {comp.short_target(m.setup, "setup"): m.name for m in comp.manifests() if m.setup}
    resolve = runtime.resolve

    def recording(target: str, default: str) -> Any:
        setup = resolve(target, default)

        async def run(rt: Any) -> None:
            now[0] = names[target]
            token = running.set(names[target])
            try:
                await setup(rt)
            finally:
                running.reset(token)
                now[0] = None

        return run

    monkeypatch.setattr(runtime, "resolve", recording)
    rt = runtime.CityBrain(Settings(store=str(tmp_path / "city.db")))
    rt.ports._values = Services()
    await rt.start()
    await rt.stop()
    assert set(provided.values()) >= {"model", "ingest", "situation", "rules"}  # the recording works
    order = {m.name: m.order for m in comp.manifests()}
    for m in comp.manifests():
        if not m.setup:
            continue
        used = {provided[k] for k in hard[m.name] if k in provided} - {m.name}
        assert sorted(used) == sorted(m.needs), f"{m.name}: its setup uses {sorted(used)}, needs says {m.needs}"
        later = {provided[k] for k in soft[m.name] if k in provided and order[provided[k]] > m.order}
        assert not later, f"{m.name}: its setup looks for what {sorted(later)} register, set up after it"
        sets = sorted(k for k, who in provided.items() if who == m.name)
        expected = sorted(set(m.provides) - CONDITIONAL_PORTS)
        assert sorted(set(sets) - CONDITIONAL_PORTS) == expected, \
            f"{m.name}: its setup sets the ports {sets}, provides says {m.provides}"
        assert set(sets) <= set(m.provides), f"{m.name}: sets ports its manifest does not provide: {sets}"
    declared = {p for m in comp.manifests() for p in m.provides}
    assert declared | {"tenant"} == set(Ports.names()), "every port is provided by one component's manifest"


# the HTTP app --------------------------------------------------------------------------------------------------------
def test_the_app_mounts_the_manifests_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import citybrain.api.app as app_module
    from citybrain.config import Settings
    from citybrain.runtime import CityBrain

    assert app_module.EXTENSIONS == comp.mounts()
    called: list[str] = []
    monkeypatch.setattr(app_module, "resolve", lambda target, default: lambda app, rt: called.append(target))
    app_module.create_app(CityBrain(Settings(store=":memory:"), components=[]))
    assert called == comp.mounts()
    assert comp.mounts()[-1] == "citybrain.ops"  # admission control: the outermost middleware


# the command line ------------------------------------------------------------------------------------------------------
def root_group() -> Any:
    from citybrain.cli import app

    return typer.main.get_group(app)


def test_the_component_commands_follow_the_core_ones_in_manifest_order() -> None:
    from citybrain.cli import Deferred

    group = root_group()
    deferred = [n for n, c in group.commands.items() if isinstance(c, Deferred)]
    assert deferred == [c.name for c in comp.commands()]
    assert list(group.commands)[-len(deferred):] == deferred


def test_help_shown_without_importing_is_the_commands_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """`citybrain --help` from the manifests is exactly the help with every command imported."""
    import citybrain.cli as cli

    runner = typer.testing.CliRunner()
    shown = runner.invoke(cli.app, ["--help"], env={"COLUMNS": "100"})
    deferred = cli.Commands.__init__

    def imported(self: Any, **attrs: Any) -> None:  # every component command imported up front
        deferred(self, **attrs)
        for name, command in list(self.commands.items()):
            if isinstance(command, cli.Deferred):
                real = self.commands[name] = command.load()
                first = (real.short_help or real.help or "").strip().split("\n\n")[0].replace("\n", " ")
                assert command.spec.help == first, f"citybrain {name}: the manifest's help is not the command's own"

    monkeypatch.setattr(cli.Commands, "__init__", imported)
    full = runner.invoke(cli.app, ["--help"], env={"COLUMNS": "100"})
    assert shown.exit_code == full.exit_code == 0, full.output
    assert shown.output == full.output
    assert all(f" {c.name} " in shown.output for c in comp.commands())


def test_a_deferred_command_runs_as_if_wired_by_hand() -> None:
    from citybrain.cli import app

    runner = typer.testing.CliRunner()
    for path in (["users", "--help"], ["nodes", "--help"], ["directive", "send", "--help"], ["evaluate", "--help"]):
        result = runner.invoke(app, path, env={"COLUMNS": "100"})
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
    result = runner.invoke(app, ["usres"])
    assert result.exit_code != 0 and "Did you mean 'users'" in result.output
    wired = typer.Typer()
    from citybrain.trust.cli import users_app

    wired.add_typer(users_app, name="users")
    from citybrain.cli import Deferred

    deferred = root_group().commands["users"]
    assert isinstance(deferred, Deferred)
    loaded = deferred.load()
    by_hand = typer.main.get_group(wired).commands["users"]
    assert sorted(loaded.commands) == sorted(by_hand.commands)


def test_citybrain_help_imports_no_component() -> None:
    code = ("import sys\nfrom citybrain.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('@@' + repr(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    loaded = eval(out.split("@@", 1)[1])  # noqa: S307 - our own repr
    ours = [m for m in loaded if m.startswith("citybrain")]
    assert sorted(ours) == ["citybrain", "citybrain.cli", "citybrain.components", "citybrain.config"], ours
    heavy = {"numpy", "scipy", "shapely", "nats", "aiohttp", "httpx", "fastapi", "msgspec", "psycopg"}
    assert not heavy & {m.split(".")[0] for m in loaded}


# the docs --------------------------------------------------------------------------------------------------------------
def test_the_docs_table_is_the_manifests() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("<!-- components:begin -->\n", 1)[1].split("<!-- components:end -->", 1)[0]
    assert table == comp.markdown_table(), "stale component table: run python scripts/components.py"
    for m in comp.manifests():
        assert f"| `{m.name}` | {m.summary} |" in table


def test_the_docs_script_checks_and_writes(tmp_path: Path) -> None:
    script = [sys.executable, str(ROOT / "scripts" / "components.py")]
    assert subprocess.run([*script, "--check"], capture_output=True, cwd=ROOT).returncode == 0
    doc = tmp_path / "architecture.md"
    doc.write_text("intro\n<!-- components:begin -->\n| stale |\n<!-- components:end -->\nrest\n", encoding="utf-8")
    stale = subprocess.run([*script, "--check", "--doc", str(doc)], capture_output=True, text=True)
    assert stale.returncode == 1 and "-| stale |" in stale.stdout
    assert subprocess.run([*script, "--doc", str(doc)], capture_output=True).returncode == 0
    assert doc.read_text(encoding="utf-8") == ("intro\n<!-- components:begin -->\n" + comp.markdown_table()
                                               + "<!-- components:end -->\nrest\n")
    assert subprocess.run([*script, "--check", "--doc", str(doc)], capture_output=True).returncode == 0


def test_the_table_lists_every_component_with_its_wiring() -> None:
    rows = {line.split("|")[1].strip(" `"): line for line in comp.markdown_table().splitlines()[2:]}
    assert list(rows) == [m.name for m in comp.manifests()]
    assert "setup 4 after `model`, `situation`" in rows["rules"]
    assert "`citybrain nodes`" in rows["federation"]
