"""Every Open311 test runs twice: on SQLite and on PostgreSQL (a fresh schema per test)."""

from cases.casecity import case_store

__all__ = ["case_store"]
