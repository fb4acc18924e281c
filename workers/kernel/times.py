"""Durations and timestamps: one grammar for durations in the config and on the command line."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_time(at: float) -> str:
    """Unix time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
