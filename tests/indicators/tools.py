"""A check for tests that need an executable (Chromium, pdftoppm): fail under CI=true, skip elsewhere."""

from __future__ import annotations

import shutil

import pytest
from services import in_ci


def require_executable(name: str, hint: str) -> str:
    """Return the path of `name`, or fail (CI=true) / skip (otherwise) the calling test with a reason."""
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed ({hint})"
    if in_ci():
        pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
    pytest.skip(f"{reason}; install it, or set CI=true to turn this skip into a failure")
