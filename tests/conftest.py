"""Shared test setup: make helpers in tests/ (such as services.py) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
