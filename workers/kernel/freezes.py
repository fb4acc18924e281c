"""Change freezes: the ones people start from Slack (kept in Redis) and the config's recurring windows.

While a freeze applies to a target, nothing writes it: push, promote, rollback and delete are
refused at the acknowledgement, and a job queued before the freeze began is refused by the
worker when it starts.  Reads are never frozen.  A freeze from Slack may be scheduled (its
``starts`` in the future); it ends at ``ends`` or when someone ends it early (``ended_at``).
Stdlib only (and the guards' croniter), shared by the bot and the workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from workers.kernel.guards import Guards, Scope
from workers.kernel.keys import FREEZE_IDS_KEY, FREEZES_KEY

KEEP_ENDED_SECONDS = 7 * 24 * 3600
"""How long an ended freeze stays in Redis (``freezes`` lists only active and scheduled ones)."""


@dataclass(frozen=True)
class Freeze:
    """A freeze started from Slack: ``id`` like ``F3``; ``who`` the Slack user; times in epoch seconds."""

    id: str
    scope: Scope
    starts: float
    ends: float
    reason: str
    who: str
    ended_at: float | None = None
    ended_by: str | None = None

    def applies(self, now: float) -> bool:
        return self.starts <= now < self.effective_end

    def scheduled(self, now: float) -> bool:
        return now < self.starts and self.ended_at is None

    @property
    def effective_end(self) -> float:
        return min(self.ends, self.ended_at) if self.ended_at is not None else self.ends

    def to_json(self) -> str:
        data = {"id": self.id, "images": list(self.scope.images), "tags": list(self.scope.tags),
                "registries": list(self.scope.registries), "starts": self.starts, "ends": self.ends,
                "reason": self.reason, "who": self.who, "ended_at": self.ended_at, "ended_by": self.ended_by}
        return json.dumps({k: v for k, v in data.items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, value: str | bytes) -> Freeze:
        data: dict[str, Any] = json.loads(value)
        scope = Scope(images=tuple(data.get("images", ("**",))), tags=tuple(data.get("tags", ("*",))),
                      registries=tuple(data.get("registries", ("*",))))
        return cls(id=str(data["id"]), scope=scope, starts=float(data["starts"]), ends=float(data["ends"]),
                   reason=str(data.get("reason", "")), who=str(data.get("who", "")),
                   ended_at=float(data["ended_at"]) if data.get("ended_at") is not None else None,
                   ended_by=data.get("ended_by"))


@dataclass(frozen=True)
class Frozen:
    """Why a target is frozen now: a window of the config or a freeze from Slack, with its reason and end."""

    name: str
    """``window weekend`` or ``freeze F3``."""
    reason: str
    ends: float
    who: str = ""


class _Redis(Protocol):
    def hgetall(self, name: str) -> Any: ...
    def hget(self, name: str, key: str) -> Any: ...
    def hset(self, name: str, key: str, value: str) -> Any: ...
    def hdel(self, name: str, *keys: str) -> Any: ...
    def incr(self, name: str) -> Any: ...


def read_freezes(connection: _Redis) -> list[Freeze]:
    """Every freeze kept (unreadable entries skipped), oldest id first."""
    freezes = []
    for raw in dict(connection.hgetall(FREEZES_KEY)).values():
        try:
            freezes.append(Freeze.from_json(raw))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(freezes, key=lambda f: (len(f.id), f.id))


def start_freeze(connection: _Redis, scope: Scope, starts: float, ends: float, reason: str, who: str) -> Freeze:
    """Store a new freeze (and drop ended ones older than :data:`KEEP_ENDED_SECONDS`)."""
    freeze = Freeze(id=f"F{int(connection.incr(FREEZE_IDS_KEY))}", scope=scope, starts=starts, ends=ends,
                    reason=reason, who=who)
    connection.hset(FREEZES_KEY, freeze.id, freeze.to_json())
    stale = [f.id for f in read_freezes(connection) if f.effective_end < starts - KEEP_ENDED_SECONDS]
    if stale:
        connection.hdel(FREEZES_KEY, *stale)
    return freeze


def end_freeze(connection: _Redis, freeze_id: str, who: str, now: float) -> Freeze | None:
    """End a freeze early (a scheduled one never starts); None when there is no such freeze or it is over."""
    raw = connection.hget(FREEZES_KEY, freeze_id)
    if raw is None:
        return None
    freeze = Freeze.from_json(raw)
    if freeze.effective_end <= now:
        return None
    ended = replace(freeze, ended_at=now, ended_by=who)
    connection.hset(FREEZES_KEY, freeze_id, ended.to_json())
    return ended


def frozen(guards: Guards, freezes: Iterable[Freeze], now: float, registry: str, image: str,
           tag: str) -> list[Frozen]:
    """Everything that freezes the target at ``now``: the config's open windows, then Slack's freezes."""
    found = [Frozen(name=f"window {window.name}", reason=window.reason, ends=end)
             for window, end in guards.open_windows(now, registry, image, tag)]
    found += [Frozen(name=f"freeze {freeze.id}", reason=freeze.reason, ends=freeze.effective_end, who=freeze.who)
              for freeze in freezes if freeze.applies(now) and freeze.scope.covers(registry, image, tag)]
    return found


def listed(freezes: Sequence[Freeze], now: float) -> list[Freeze]:
    """The freezes ``freezes`` shows: active ones, then scheduled ones, by start."""
    return sorted((f for f in freezes if f.applies(now) or f.scheduled(now)), key=lambda f: f.starts)
