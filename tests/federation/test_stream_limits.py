"""The federation stream is bounded: created with the configured max age and size, and an existing stream
created without limits (as earlier releases did) is brought to them when a node connects."""

from __future__ import annotations

import nats
import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from citybrain.federation.link import STREAM_MAX_AGE_S, STREAM_MAX_BYTES, Link
from citybrain.federation.messages import stream_name

pytestmark = pytest.mark.nats


async def stream_config(pfx: str) -> StreamConfig:
    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        info = await nc.jetstream().stream_info(stream_name(pfx))
        return info.config
    finally:
        await nc.close()


async def test_new_stream_has_the_default_limits(nats_prefix: str) -> None:
    link = Link("nats://127.0.0.1:4222", nats_prefix, "limits-test")
    await link._connect()
    try:
        config = await stream_config(nats_prefix)
        assert config.max_age == STREAM_MAX_AGE_S == 30 * 86400
        assert config.max_bytes == STREAM_MAX_BYTES
        assert config.retention == RetentionPolicy.LIMITS and config.storage == StorageType.FILE
    finally:
        await link._close()


async def test_an_unbounded_stream_is_given_the_configured_limits(nats_prefix: str) -> None:
    nc = await nats.connect("nats://127.0.0.1:4222")
    await nc.jetstream().add_stream(StreamConfig(
        name=stream_name(nats_prefix), subjects=[f"{nats_prefix}.up.>", f"{nats_prefix}.down.>"],
        storage=StorageType.FILE, retention=RetentionPolicy.LIMITS, duplicate_window=120))
    await nc.jetstream().publish(f"{nats_prefix}.up.kept", b"still there")
    await nc.close()
    link = Link("nats://127.0.0.1:4222", nats_prefix, "limits-test", max_age_s=7 * 86400, max_bytes=1024**3)
    await link._connect()
    try:
        config = await stream_config(nats_prefix)
        assert config.max_age == 7 * 86400 and config.max_bytes == 1024**3
        nc = await nats.connect("nats://127.0.0.1:4222")
        info = await nc.jetstream().stream_info(stream_name(nats_prefix))
        await nc.close()
        assert info.state.messages == 1  # updating the limits keeps what the stream holds
    finally:
        await link._close()
