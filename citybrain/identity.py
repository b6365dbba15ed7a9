"""Who is acting (platform floor): the identity a request was authenticated as, and the two built-in ones.

The trust component authenticates requests and keeps the directory of identities; every other component
only reads the identity (`citybrain.confine.identity_of`) and its place and department.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class Identity(msgspec.Struct, kw_only=True, frozen=True):
    """Who is acting: a user or service account with one role, scoped by department and/or place."""

    name: str
    role: str
    kind: Literal["user", "service"] = "user"
    department: str | None = None
    place: str | None = None  # place URN: the identity sees only this place and what lies below it
    disabled: bool = False

    @property
    def actor(self) -> str:
        """Return the actor string of contexts, e.g. department_handler:transport:zhao."""
        scope = self.department or (self.place.rsplit(":", 1)[-1] if self.place else None)
        return ":".join(p for p in (self.role, scope, self.name) if p)
LOCAL_ADMIN = Identity(name="local", role="admin", kind="service")
ANONYMOUS = Identity(name="anonymous", role="anonymous", kind="service")
