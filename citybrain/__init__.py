"""citybrain: an open-source city brain."""

__version__ = "0.1.0"
