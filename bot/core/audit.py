"""The audit trail: append entries to the Redis audit stream and read them back, oldest first.

There is deliberately no way to delete or trim entries here: the stream only grows
through regops, and whoever needs to prune it must do so outside the bot, in Redis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import redis

from workers.kernel import times
from workers.kernel.audit import AuditEntry
from workers.kernel.keys import AUDIT_STREAM
from workers.kernel.times import iso_time
from workers.kernel.values import as_str

PAGE_SIZE = 500
"""Entries fetched per XRANGE: big streams are read in pages, never all at once."""

_PLAIN = re.compile(r"[!#-<>-\[\]-~]+")  # printable ASCII but for space, '"', '\\' and '='


class AuditLog:
    """Appends to and reads :data:`~workers.kernel.contracts.AUDIT_STREAM`."""

    def __init__(self, connection: redis.Redis, page_size: int = PAGE_SIZE) -> None:
        self._redis = connection
        self._page_size = page_size

    def record(self, entry: AuditEntry, pipeline: redis.client.Pipeline | None = None) -> None:
        """XADD ``entry``; with ``pipeline`` it is only queued there, for the caller's transaction."""
        entry.validate()
        fields: dict[Any, Any] = entry.to_fields()
        if pipeline is not None:
            pipeline.xadd(AUDIT_STREAM, fields)
            return
        self._redis.xadd(AUDIT_STREAM, fields)

    def entries(self, since: float | None = None, user: str | None = None) -> Iterator[AuditEntry]:
        """Entries oldest first; ``since`` is a unix time, ``user`` a Slack user ID to keep."""
        # Stream ids start with Redis's own millisecond clock at XADD: a cheap lower bound.
        start = f"{max(0, int(since * 1000))}-0" if since is not None else "-"
        while True:
            page = self._redis.xrange(AUDIT_STREAM, min=start, max="+", count=self._page_size)
            for _entry_id, fields in page:
                entry = AuditEntry.from_fields(_text_fields(fields))
                if user is None or entry.user == user:
                    yield entry
            if len(page) < self._page_size:
                return
            last_id = page[-1][0]
            start = "(" + as_str(last_id)


def _text_fields(fields: dict[Any, Any]) -> dict[str, str]:
    # Works on bytes connections too, so callers may pass whichever client they hold.
    def text(value: Any) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    return {text(k): text(v) for k, v in fields.items()}


def _value(text: str) -> str:
    """``text`` as one token: bare when plain, else JSON-quoted, so the line cannot be split or forged."""
    if not text:
        return "-"
    if _PLAIN.fullmatch(text):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    # JSON leaves line separators and bidi overrides as they are; they could still fake a line.
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in quoted)


def format_line(entry: AuditEntry) -> str:
    """One line for people: time (UTC), user, channel, kind, decision, rule, job, command/outcome.

    Values that are empty show as ``-``; values with spaces, quotes or control
    characters are JSON-quoted, so a command containing a newline stays on one line.
    """
    parts = [
        iso_time(entry.at),
        f"user={_value(entry.user)}",
        f"channel={_value(entry.channel)}",
        f"kind={_value(entry.kind)}",
        f"decision={_value(entry.decision)}",
        f"rule={_value(entry.rule)}",
        f"job={_value(entry.job_id)}",
    ]
    if entry.command:
        parts.append(f"command={_value(entry.command)}")
    if entry.outcome:
        parts.append(f"outcome={_value(entry.outcome)}")
    return " ".join(parts)


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``7d``, ``1w`` or combinations like ``1h30m`` → seconds.

    The kernel's duration grammar, but a bare number is refused: ``--since 90`` could
    mean minutes as well as seconds.
    """
    try:
        return float(times.parse_duration(text, bare_seconds=False))
    except ValueError:
        raise ValueError(f"invalid duration {text!r}: use e.g. 90s, 30m, 2h or 7d") from None
