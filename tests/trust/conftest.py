"""Fixtures of the trust tests (the city itself is built in trustcity.py)."""

from trustcity import city  # noqa: F401  (the fixture)
