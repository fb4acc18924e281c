"""Polling until something is true, for tests that watch Redis, processes or files change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(check: Callable[[], Any], timeout: float, what: str, detail: Callable[[], str] = lambda: "",
               interval: float = 0.05) -> Any:
    """The first true value ``check`` returns within ``timeout`` seconds; else fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail()}")
