"""The retry policy for transient job failures: the ``retries:`` config section and its backoff.

The bot validates the same section (``bot/config.py``) with the same rules; a worker
reads only this section of the shared config file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.errors import ConfigError

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_KEYS = ("attempts", "backoff", "max_backoff")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` runs at most (the first included); the n-th retry waits
    ``backoff * 2**(n-1)`` seconds, never more than ``max_backoff``."""

    attempts: int = 3
    backoff: float = 2.0
    max_backoff: float = 30.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the second attempt)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (retry - 1)))


def _seconds(value: object, path: str, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        problems.append(f"{path}: must be a duration like 2s or 1m")
        return None
    if isinstance(value, int):
        seconds = value
    elif value.strip().isdigit():
        seconds = int(value)
    else:
        match = _DURATION.fullmatch(value.strip())
        if not value.strip() or match is None:
            problems.append(f"{path}: `{value}` is not a duration like 2s or 1m")
            return None
        hours, minutes, secs = (int(group or 0) for group in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        problems.append(f"{path}: must be positive")
        return None
    return seconds


def parse_retries(data: Any, source: str = "config") -> RetryPolicy:
    """``retries:`` of a loaded config document → the policy (defaults when absent)."""
    section = data.get("retries") if isinstance(data, Mapping) else None
    if section is None:
        return RetryPolicy()
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: retries: must be a mapping with keys attempts, backoff, max_backoff")
    problems = [f"retries.{key}: unknown key" for key in section if key not in _KEYS]
    values: dict[str, float] = {}
    if "attempts" in section:
        attempts = section["attempts"]
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            problems.append("retries.attempts: must be a whole number, at least 1")
        else:
            values["attempts"] = attempts
    for key in ("backoff", "max_backoff"):
        if key in section:
            seconds = _seconds(section[key], f"retries.{key}", problems)
            if seconds is not None:
                values[key] = seconds
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    policy = RetryPolicy(**values)  # type: ignore[arg-type]
    if policy.max_backoff < policy.backoff:
        raise ConfigError(f"{source}: retries.max_backoff: must not be shorter than retries.backoff")
    return policy
