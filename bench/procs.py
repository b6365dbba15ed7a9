"""Process helpers the benchmark scripts share (each script runs with bench/ on sys.path)."""

from __future__ import annotations

import subprocess
from typing import IO, Any


def stop_process(proc: subprocess.Popen[Any] | None, log: IO[Any] | None = None, wait: float = 15.0) -> None:
    """Terminate a server the benchmark started (SIGTERM, then SIGKILL after `wait` s) and close its log."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
    if log is not None:
        log.close()
