"""The bus port: events, work sharing and federation messages, behind one contract."""

from citybrain.bus.base import Bus, Handler, Message, Subscription, subject_matches

__all__ = ["Bus", "Handler", "Message", "Subscription", "open_bus", "subject_matches"]


def open_bus(url: str, stream: str = "CITYBRAIN", prefix: str = "cb", replicas: int = 1) -> Bus:
    """Return an (unconnected) bus for 'memory' or nats:// URL(s), comma-separated for a cluster (stream,
    subject prefix and replicas on NATS)."""
    if url.startswith(("nats://", "tls://")):
        from citybrain.bus.nats import NatsBus

        return NatsBus(url, stream=stream, prefix=prefix, replicas=replicas)
    if url not in ("memory", "", "memory://"):
        raise ValueError(f"unknown bus {url!r}: use 'memory' or nats://host:port")
    from citybrain.bus.memory import MemoryBus

    return MemoryBus()
