"""Per-channel outboxes of announcements in Redis: written in the transaction that takes an event.

Each channel has a list (oldest first) and an entry in :data:`OUTBOX_DUE_KEY` saying when its
next message may go; :mod:`bot.slack.announcer` drains them, at most about one message a
second per channel, coalescing what waits.  Nothing is dropped: an entry leaves its list only
once the message naming it was posted.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.core.announcements import Announcement
from workers.kernel.keys import OUTBOX_DUE_KEY, outbox_key


class _Writes(Protocol):
    def rpush(self, name: str, *values: str) -> Any: ...
    def zadd(self, name: str, mapping: dict[str, float], nx: bool = ...) -> Any: ...


def put(pipe: _Writes, channel: str, announcement: Announcement, now: float) -> None:
    """Queue ``announcement`` for ``channel`` (in the caller's transaction); due now unless already waiting."""
    pipe.rpush(outbox_key(channel), announcement.to_json())
    pipe.zadd(OUTBOX_DUE_KEY, {channel: now}, nx=True)
