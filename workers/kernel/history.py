"""Tag history: every digest a tag has pointed at that regops knows of, newest first.

Written for each tag change regops makes (push, promote, rollback, delete: by the worker, in
the transaction that records the job's success) and, later, for changes the registry reports.
Kept bounded per tag (:data:`HISTORY_LIMIT`) and without a TTL: a tag's history is what
``history`` shows and what ``rollback`` goes back along, long after the jobs have expired.
Stdlib only, shared by the bot and the workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

from workers.kernel.keys import history_key, tag_times_key

HISTORY_LIMIT = 100
"""Changes kept per tag (older ones are dropped as new ones come)."""


class Change(StrEnum):
    """How a tag changed."""

    PUSH = "push"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    DELETE = "delete"
    EVENT = "registry event"


@dataclass(frozen=True)
class TagChange:
    """One change of one tag: it now points at ``digest`` (None: deleted), before at ``previous``.

    ``who`` is the Slack user who asked for it, or the registry account for changes made
    outside regops; ``job_id`` is the regops job that made it (None for those).  ``source``
    says where a promote copied from (a full reference).
    """

    at: float
    reference: str
    digest: str | None
    previous: str | None
    who: str
    how: str
    job_id: str | None = None
    source: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, value: str | bytes) -> TagChange:
        data: dict[str, Any] = json.loads(value)
        return cls(at=float(data["at"]), reference=str(data["reference"]), digest=data.get("digest"),
                   previous=data.get("previous"), who=str(data.get("who", "")), how=str(data.get("how", "")),
                   job_id=data.get("job_id"), source=data.get("source"))


class _Writes(Protocol):
    def lpush(self, name: str, *values: str) -> Any: ...
    def ltrim(self, name: str, start: int, end: int) -> Any: ...
    def hset(self, name: str, key: str, value: str) -> Any: ...


class _Reads(Protocol):
    def lrange(self, name: str, start: int, end: int) -> Any: ...


def repository_of(reference: str) -> str:
    """``server/namespace/image`` of a full ``…:tag`` reference."""
    name, _, _tag = reference.rpartition(":")
    return name if name and "/" not in _tag else reference


def tag_of(reference: str) -> str:
    return reference.rpartition(":")[2]


def record_changes(pipe: _Writes, changes: Iterable[TagChange]) -> None:
    """Add ``changes`` to their tags' histories (in the caller's transaction)."""
    for change in changes:
        key = history_key(change.reference)
        pipe.lpush(key, change.to_json())
        pipe.ltrim(key, 0, HISTORY_LIMIT - 1)
        pipe.hset(tag_times_key(repository_of(change.reference)), tag_of(change.reference), repr(change.at))


def read_history(connection: _Reads, reference: str, limit: int = HISTORY_LIMIT) -> list[TagChange]:
    """The tag's known changes, newest first (unreadable entries are skipped)."""
    changes = []
    for raw in connection.lrange(history_key(reference), 0, max(0, limit - 1)):
        try:
            changes.append(TagChange.from_json(raw))
        except (ValueError, KeyError, TypeError):
            continue
    return changes


def current_digest(changes: Sequence[TagChange]) -> str | None:
    """What the tag points at as far as the history knows (None: unknown or deleted)."""
    return changes[0].digest if changes else None


def rollback_target(changes: Sequence[TagChange]) -> str | None:
    """The digest the tag had before its last change, or None when the history knows none."""
    return changes[0].previous if changes else None


def known_digests(changes: Sequence[TagChange]) -> set[str]:
    """Every digest the history shows the tag at (what ``rollback --to`` may name)."""
    return {digest for change in changes for digest in (change.digest, change.previous) if digest}
