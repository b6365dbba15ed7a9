"""require_service: skip locally, fail in CI, when a service is down."""

from __future__ import annotations

import socket

import pytest
from services import require_service


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_skips_when_not_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CI=true a missing service skips the test, saying how to make it fail instead."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="CI=true"):
        require_service("thing", "127.0.0.1", _closed_port())


def test_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """With CI=true a missing service fails the test."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not reachable"):
        require_service("thing", "127.0.0.1", _closed_port())


def test_passes_when_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listening service lets the test run."""
    monkeypatch.setenv("CI", "true")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        require_service("thing", "127.0.0.1", s.getsockname()[1])
