"""Durations and timestamps: one grammar for durations in the config and on the command line.

A duration is a whole number of seconds (``90``) or one or more terms of a whole number
and a unit (``90s``, ``30m``, ``1h30m``, ``7d``, ``1w``); units are ``w``, ``d``, ``h``,
``m`` and ``s``, in either case, and surrounding whitespace is ignored.  No fractions,
signs or spaces inside.  Callers decide what range is valid and word their own errors.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}

_BARE = re.compile(r"[0-9]+")
_TERMS = re.compile(r"(?:[0-9]+[wdhms])+")
_TERM = re.compile(r"([0-9]+)([wdhms])")


def parse_duration(text: str, *, bare_seconds: bool = True) -> int:
    """Seconds in ``text``; ValueError if it is not a duration.

    ``bare_seconds=False`` refuses a number without a unit, for places where ``90``
    would be ambiguous (``regops audit --since 90``: minutes? days?).
    """
    cleaned = text.strip().lower()
    if bare_seconds and _BARE.fullmatch(cleaned):
        return int(cleaned)
    if not _TERMS.fullmatch(cleaned):
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(number) * UNIT_SECONDS[unit] for number, unit in _TERM.findall(cleaned))


def format_duration(seconds: float) -> str:
    """``5400`` → ``1h30m``, which :func:`parse_duration` reads back; a fraction of a second shows as ``0.5s``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    rest_seconds = secs + (seconds - whole)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{rest_seconds:g}s" if rest_seconds else "")
    return "".join(parts) or "0s"


def iso_time(at: float) -> str:
    """Unix time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
