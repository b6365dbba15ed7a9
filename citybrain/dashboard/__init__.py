"""The operations dashboard: the city view, the community view and the case page, served offline."""

from citybrain.dashboard.web import mount

__all__ = ["mount"]
