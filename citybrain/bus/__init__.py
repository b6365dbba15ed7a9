"""The bus port: events, work sharing and federation messages, behind one contract."""

from citybrain.bus.base import Bus, Handler, Message, Subscription, subject_matches

__all__ = ["Bus", "Handler", "Message", "Subscription", "open_bus", "subject_matches"]


def open_bus(url: str, stream: str = "CITYBRAIN", prefix: str = "cb") -> Bus:
    """Return an (unconnected) bus for 'memory' or a nats:// URL (stream and subject prefix on NATS)."""
    if url.startswith(("nats://", "tls://")):
        from citybrain.bus.nats import NatsBus

        return NatsBus(url, stream=stream, prefix=prefix)
    if url not in ("memory", "", "memory://"):
        raise ValueError(f"unknown bus {url!r}: use 'memory' or nats://host:port")
    from citybrain.bus.memory import MemoryBus

    return MemoryBus()
