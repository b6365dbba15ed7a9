"""Federation test fixtures: the real NATS server is required (fail in CI, skip elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fednodes import purge, unique_prefix
from services import require_service


@pytest.fixture
def nats_prefix() -> Iterator[str]:
    """Require NATS on 127.0.0.1:4222 and give the test its own subject prefix and stream."""
    require_service("NATS (JetStream)", "127.0.0.1", 4222)
    pfx = unique_prefix()
    yield pfx
    purge(pfx)
