"""`citybrain users …` on the node's store, and secrets kept out of settings output."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from citybrain.config import Settings
from citybrain.runtime import CityBrain
from citybrain.trust.cli import users_app


def test_users_add_list_key_disable(tmp_path: Path) -> None:
    store = str(tmp_path / "users.db")
    run = CliRunner()
    r = run.invoke(users_app, ["add", "zhao", "--role", "department_handler", "--department", "transport",
                               "--store", store])
    assert r.exit_code == 0 and "API key (shown once" in r.output, r.output
    key = r.output.rsplit(": ", 1)[1].strip()
    assert key.startswith("cb_")
    r = run.invoke(users_app, ["add", "zhao", "--role", "auditor", "--store", store])
    assert r.exit_code == 1 and "exists" in r.output
    r = run.invoke(users_app, ["add", "x", "--role", "mayor", "--store", store])
    assert r.exit_code == 1 and "role" in r.output
    r = run.invoke(users_app, ["list", "--store", store])
    assert r.exit_code == 0 and "department_handler" in r.output and key not in r.output

    async def who() -> str:
        async with CityBrain(Settings(store=store), components=["citybrain.trust"]) as rt:
            return str((await rt.ports.auth.identify(key)).actor)

    assert asyncio.run(who()) == "department_handler:transport:zhao"
    assert run.invoke(users_app, ["disable", "zhao", "--store", store]).exit_code == 0
    assert "yes" in run.invoke(users_app, ["list", "--store", store]).output


def test_secret_settings_are_redacted() -> None:
    s = Settings(jwt_secret="hunter2-very-secret", parent="nats://u:pw123@h:4222")
    assert "hunter2" not in repr(s) and "pw123" not in repr(s)
    assert s.public()["jwt_secret"] == "***"
