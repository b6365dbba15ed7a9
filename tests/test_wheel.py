"""The wheel on its own: built from the source tree, installed into a fresh venv, serving the demo city.

What a newcomer does with `make wheel`: `pip install dist/citybrain-*.whl` into a new venv (runtime dependencies
only, no extras, no --system-site-packages), then `citybrain serve --demo` from a directory outside the checkout.
The node must find everything it reads at run time inside the installed package: the dashboard pages and their
vendored scripts, the API docs' Swagger UI / ReDoc assets (no CDN), the JSON-LD contexts, the demo city's data,
rules, plans and catalogs. The wheel itself holds every file tracked under citybrain/ and no test files.

One wheel build (~5 s), one venv with its dependencies from pip's cache or the local mirror (~40 s), one node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE_CONTEXT = "ngsi-ld-core-context-v1.8.jsonld"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@dataclass
class Installed:
    wheel: Path
    venv: Path
    work: Path  # a working directory outside the checkout
    env: dict[str, str]

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def _run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _clean_env(tmp: Path) -> dict[str, str]:
    """The environment less anything that would point Python or citybrain back at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CITYBRAIN_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV"))}
    env.update(PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1", HOME=env.get("HOME", str(tmp)))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel from a copy of the source tree, then install it into a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = _clean_env(tmp)
    # a copy, so the build neither reads nor writes the checkout's build/ (stale files there would enter the wheel)
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "citybrain", src / "citybrain",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", "*.db-*"))
    t0 = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)],
         timeout=180, cwd=tmp, env=env)
    t1 = time.monotonic()
    wheels = sorted((tmp / "dist").glob("citybrain-*-py3-none-any.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120, cwd=tmp, env=env)
    # runtime dependencies only; bytecode is left to the first import, as a plain install would do for the package
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheels[0])],
         timeout=300, cwd=tmp, env=env)
    t2 = time.monotonic()
    print(f"\nwheel built in {t1 - t0:.1f}s, venv made and installed in {t2 - t1:.1f}s")
    work = tmp / "work"
    work.mkdir()
    return Installed(wheels[0], venv, work, env)


def _tracked() -> list[str]:
    """Files under citybrain/ that the product consists of: tracked by git (or, without git, on disk)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "citybrain"], cwd=ROOT, capture_output=True,
                             timeout=30, check=True).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [p.relative_to(ROOT).as_posix() for p in (ROOT / "citybrain").rglob("*") if p.is_file()]
    return sorted(n for n in names if (ROOT / n).is_file() and "__pycache__" not in n and not n.endswith(".pyc"))


def test_wheel_holds_every_package_file_and_no_tests(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as zf:
        names = set(zf.namelist())
    package = {n for n in names if not n.startswith("citybrain-")}
    assert all(n.startswith("citybrain/") for n in package), sorted(n for n in package if not n.startswith("citybrain/"))
    missing = [n for n in _tracked() if n not in names]
    assert not missing, f"tracked files left out of the wheel (pyproject.toml package-data): {missing}"
    testish = [n for n in names if n.startswith("tests/") or "/tests/" in n or "__pycache__" in n or n.endswith(".pyc")
               or re.search(r"(^|/)(test_[^/]*|[^/]*_test|conftest)\.py$", n)]
    assert not testish, testish
    for data in ("citybrain/ngsi/contexts/index.json", f"citybrain/ngsi/contexts/{CORE_CONTEXT}",
                 "citybrain/demo/data/manifest.json", "citybrain/dashboard/static/index.html",
                 "citybrain/dashboard/static/vendor/swagger-ui/swagger-ui-bundle.js",
                 "citybrain/dashboard/static/vendor/redoc/redoc.standalone.js",
                 "citybrain/rules/default.yaml", "citybrain/trust/catalog.yaml"):
        assert data in names, data
    with zipfile.ZipFile(installed.wheel) as zf:
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "citybrain = citybrain.cli:app" in entry
    # extras stay extras: nothing from [test], [dev] or [pdf] is a plain requirement
    plain = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert plain and not [line for line in plain if re.search(r"pytest|playwright|mypy|ruff|hypothesis", line)], plain


def test_installed_package_comes_from_the_venv(installed: Installed) -> None:
    probe = (
        "import json, sys, importlib.metadata as md, citybrain, citybrain.cli, citybrain.api, citybrain.demo\n"
        "mods = {n: getattr(m, '__file__', None) for n, m in list(sys.modules.items()) if n.split('.')[0] == 'citybrain'}\n"
        "dist = md.distribution('citybrain')\n"
        "print(json.dumps({'file': citybrain.__file__, 'prefix': sys.prefix, 'base': sys.base_prefix,"
        " 'path': sys.path, 'mods': mods, 'direct': dist.read_text('direct_url.json'),"
        " 'files': [str(f.locate()) for f in dist.files or []]}))\n")
    got = json.loads(_run([str(installed.bin / "python"), "-c", probe], timeout=120, cwd=installed.work,
                          env=installed.env).stdout)
    venv = installed.venv.resolve()
    assert Path(got["prefix"]).resolve() == venv and got["base"] != got["prefix"]
    assert Path(got["file"]).resolve().is_relative_to(venv / "lib"), got["file"]
    assert not [p for p in got["path"] if p and Path(p).resolve().is_relative_to(ROOT)], got["path"]
    assert len(got["mods"]) > 20
    outside = {n: f for n, f in got["mods"].items() if f and not Path(f).resolve().is_relative_to(venv)}
    assert not outside, outside
    assert not any(Path(f).resolve().is_relative_to(ROOT) for f in got["files"])
    assert got["direct"] is None or '"editable": true' not in got["direct"]  # an installed wheel, not a link


def test_cli_help(installed: Installed) -> None:
    out = _run([str(installed.bin / "citybrain"), "--help"], timeout=60, cwd=installed.work, env=installed.env).stdout
    assert "serve" in out and "demo" in out
    assert _run([str(installed.bin / "citybrain"), "version"], timeout=60, cwd=installed.work,
                env=installed.env).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def node(installed: Installed) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`citybrain serve --demo` from the venv, in the working directory outside the checkout."""
    port = free_port()
    logfile = installed.work / "serve.log"
    with open(logfile, "wb") as log:
        proc = subprocess.Popen(
            [str(installed.bin / "citybrain"), "serve", "--demo", "--auth", "off", "--host", "127.0.0.1",
             "--store", str(installed.work / "demo.db"), "--port", str(port)],
            cwd=installed.work, stdout=log, stderr=subprocess.STDOUT, env=installed.env)
    try:
        yield f"http://127.0.0.1:{port}", proc, logfile
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _wait(what: str, check: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"citybrain serve exited with {proc.returncode} before {what}:\n{log.read_text()[-4000:]}")
        try:
            got = check()
            if got:
                return got
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f}s:\n{log.read_text()[-4000:]}")
        time.sleep(0.25)


def _assets(html: str) -> list[str]:
    """The scripts, stylesheets and icons a page loads (inline data: URLs aside)."""
    found = re.findall(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", html)
    return [url for url in found if not url.startswith("data:")]


def test_serves_the_demo_from_the_wheel(installed: Installed,
                                        node: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    base, proc, log = node
    t0 = time.monotonic()
    with httpx.Client(base_url=base, timeout=10, trust_env=False) as c:
        _wait("health", lambda: c.get("/-/health").status_code == 200, proc, log, 60)
        t_up = time.monotonic() - t0

        # the demo loader has written the city (places of every level, with their map shapes)
        def city_loaded() -> Any:
            tree = c.get("/api/v1/places").json()
            return tree if tree and tree[0]["type"] == "City" and tree[0].get("children") else None

        tree = _wait("demo city", city_loaded, proc, log, 60)
        assert tree[0]["id"] == "urn:ngsi-ld:City:beijing-demo"
        t_city = time.monotonic() - t0

        def districts() -> Any:
            r = c.get("/api/v1/situation", params={"level": "district"})
            return r.status_code == 200 and r.json()["places"]

        assert _wait("district situation", districts, proc, log, 30)[0]["type"] == "District"
        shapes = c.get("/api/v1/map/places", params={"level": "District"})
        assert shapes.status_code == 200 and shapes.json()["features"], shapes.text[:300]

        # the dashboard, and every script and stylesheet it loads, from the node
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<html" in page.text.lower()
        assets = _assets(page.text)
        assert any(a.endswith(".js") for a in assets), assets
        for url in assets:
            assert url.startswith("/"), f"dashboard loads {url} from elsewhere"
            assert c.get(url).status_code == 200, url

        # API docs: Swagger UI and ReDoc with their assets from this node, no CDN
        for path, needed in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
            doc = c.get(path)
            assert doc.status_code == 200 and doc.headers["content-type"].startswith("text/html"), path
            assets = _assets(doc.text)
            assert not re.search(r"cdn\.|googleapis|jsdelivr|unpkg", doc.text), doc.text
            for name in needed:
                assert any(a.endswith(name) for a in assets), (path, assets)
            for url in assets:
                assert url.startswith("/"), f"{path} loads {url} from elsewhere"
                got = c.get(url)
                assert got.status_code == 200 and len(got.content) > 100, url
        spec = c.get("/openapi.json")
        assert spec.status_code == 200 and "/api/v1/situation" in spec.json()["paths"]

        # the JSON-LD core context, from the node's own cache
        listed = c.get("/ngsi-ld/v1/jsonldContexts")
        assert listed.status_code == 200
        assert any(u.endswith(CORE_CONTEXT) for u in listed.json()), listed.json()
        core = c.get(f"/ngsi-ld/v1/jsonldContexts/{CORE_CONTEXT}")
        assert core.status_code == 200 and core.headers["content-type"].startswith("application/ld+json")
        assert core.json()["@context"]["ngsi-ld"] == "https://uri.etsi.org/ngsi-ld/"

    # a clean stop: SIGTERM drains and stops the runtime (uvicorn then re-raises the signal it caught, so the
    # process ends by SIGTERM after its shutdown, or with 0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=45) in (0, -signal.SIGTERM), log.read_text()[-4000:]
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    assert "stopped: every acknowledged write is committed" in text, text[-4000:]
    assert (installed.work / "demo.db").exists()
    print(f"\nnode answered after {t_up:.1f}s, demo city after {t_city:.1f}s")
