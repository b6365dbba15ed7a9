"""Open311 GeoReport v2: citizens and their apps file and track service requests, which become cases."""

from citybrain.open311.api import mount

__all__ = ["mount"]
