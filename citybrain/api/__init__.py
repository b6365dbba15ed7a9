"""The HTTP API: introspection, the city model, ingest, commands; other parts mount their routers."""

from citybrain.api.app import create_app

__all__ = ["create_app"]
