"""From a registry event to what changed: the tag history entries and the one announcement.

:func:`decide` reads what regops knows (the tag's history, the job expected to make the change,
whether a delete was announced already) through a pipeline in WATCH mode, watching every key it
reads, and returns a :class:`Decision`; the caller writes the decision in one MULTI/EXEC, so two
processes deciding on the same tag at once cannot both write.

* A push makes ``tag`` point at ``digest``: "new tag" when regops knew no digest for it, else
  "moved from" what it knew.  A push of the digest the tag already has is no change, unless it is
  the registry's event of a regops job whose success was recorded first (then it is announced,
  once, and the history, which the job wrote, is left alone).
* A regops job's change (an :class:`~workers.kernel.expectations.Expectation` matches) is
  recorded and announced as the job's: its Slack user, job id and action.
* Distribution reports a manifest delete as one manifest event plus one event per tag that went:
  each of them joins a :class:`PendingDelete` of that digest, and :func:`settle` announces it
  once, :data:`DELETE_HOLD_SECONDS` after the first, naming the digest and the tags (those whose
  events came, and those the history had at the digest).  A tag event arriving after that
  adds nothing but its history entry.

:func:`job_announcement` makes the announcement of a job's change for a registry that sends no events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from bot.core.announcements import Announcement
from bot.core.registry_events import RegistryEvent
from workers.kernel.config.model import RegistryConfig
from workers.kernel.expectations import Expectation
from workers.kernel.history import Change, TagChange
from workers.kernel.jobs import JobRecord
from workers.kernel.keys import (
    PENDING_DELETES_DUE_KEY,
    expectation_key,
    history_key,
    pending_delete_key,
    registry_delete_key,
    tag_times_key,
)
from workers.kernel.references import split_reference
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

PUSH, DELETE = "push", "delete"
DELETE_HOLD_SECONDS = 2.0
"""How long a manifest delete waits for the tag events that follow it before it is announced."""


@dataclass(frozen=True)
class Decision:
    """What one event changes: history entries, the announcement (None: nothing to say), keys to drop or set."""

    changes: tuple[TagChange, ...] = ()
    announcement: Announcement | None = None
    forget: tuple[str, ...] = ()
    """Expectations used up by this event."""
    mark: str | None = None
    """A delete's marker, set so the events that follow it add nothing."""
    gather: PendingDelete | None = None
    """A delete being gathered, written back with what this event added."""
    settled: str | None = None
    """A gathered delete done with (announced, or gone)."""


class _Watching(Protocol):
    """A pipeline in WATCH mode (commands run at once and return their answers)."""

    def watch(self, *names: str) -> Any: ...
    def get(self, name: str) -> Any: ...
    def lrange(self, name: str, start: int, end: int) -> Any: ...
    def hkeys(self, name: str) -> Any: ...
    def zrange(self, name: str, start: int, end: int) -> Any: ...


def reference_of(server: str, repository: str, tag: str) -> str:
    """The full reference the history is kept under (as the workers record it)."""
    return f"{server}/{repository}:{tag}"


def decide(event: RegistryEvent, registry: RegistryConfig, reads: _Watching) -> Decision:
    """What ``event`` (of ``registry``) changes, from what regops knows now; every key read is watched."""
    if event.action == PUSH and event.tag and event.digest:
        return _push(event, registry, reads)
    if event.action == DELETE and event.tag:
        return _tag_deleted(event, registry, reads)
    if event.action == DELETE and event.digest:
        return _manifest_deleted(event, registry, reads)
    log.info("registry event %s from %s: %s of %s names no tag or digest; nothing to do", event.id,
             event.registry, event.action, event.repository)
    return Decision()


def _head(reads: _Watching, reference: str) -> TagChange | None:
    key = history_key(reference)
    reads.watch(key)
    for raw in reads.lrange(key, 0, 0) or ():
        try:
            return TagChange.from_json(raw)
        except (ValueError, KeyError, TypeError):
            return None
    return None


def _expected(reads: _Watching, key: str, digest: str | None) -> Expectation | None:
    reads.watch(key)
    raw = reads.get(key)
    if not raw:
        return None
    try:
        expectation = Expectation.from_json(raw)
    except (ValueError, KeyError, TypeError):
        log.warning("registry events: unreadable expectation under %s; ignored", key)
        return None
    return expectation if expectation.matches(digest) else None


def _change(event: RegistryEvent, reference: str, digest: str | None, previous: str | None,
            expected: Expectation | None) -> TagChange:
    if expected is not None:
        return TagChange(at=event.at, reference=reference, digest=digest, previous=previous, who=expected.user,
                         how=expected.action, job_id=expected.job_id)
    return TagChange(at=event.at, reference=reference, digest=digest, previous=previous, who=event.actor or "",
                     how=Change.EVENT.value)


def _announcement(event: RegistryEvent, registry: RegistryConfig, kind: str, tags: Sequence[str],
                  digest: str | None, previous: str | None, expected: Expectation | None) -> Announcement:
    return Announcement(
        kind=kind, registry=event.registry, server=registry.server, repository=event.repository,
        tags=tuple(tags), digest=digest, at=event.at, previous=previous,
        who=expected.user if expected else (event.actor or ""), by_slack=expected is not None,
        job_id=expected.job_id if expected else None, address=event.address,
        how=expected.action if expected else "",
    )


def _push(event: RegistryEvent, registry: RegistryConfig, reads: _Watching) -> Decision:
    assert event.tag and event.digest
    reference = reference_of(registry.server, event.repository, event.tag)
    head = _head(reads, reference)
    key = expectation_key(event.registry, event.repository, event.tag)
    expected = _expected(reads, key, event.digest)
    forget = (key,) if expected else ()
    if head is not None and head.digest == event.digest:
        if expected is not None and head.job_id == expected.job_id:
            # The job's success came first and wrote the history: announce it, write nothing more.
            return Decision(announcement=_announcement(event, registry, PUSH, (event.tag,), event.digest,
                                                       head.previous, expected), forget=forget)
        return Decision(forget=forget)  # the digest the tag already had: no change
    previous = head.digest if head else None
    return Decision(
        changes=(_change(event, reference, event.digest, previous, expected),),
        announcement=_announcement(event, registry, PUSH, (event.tag,), event.digest, previous, expected),
        forget=forget,
    )


@dataclass(frozen=True)
class PendingDelete:
    """A delete being gathered: its digest, the tags whose own events came, the first event's time and sender.

    Distribution sends the manifest's event, then one event per tag that went with it; they are
    gathered for :data:`DELETE_HOLD_SECONDS` and announced as one change by :func:`settle`.
    """

    registry: str
    repository: str
    digest: str
    at: float
    tags: tuple[str, ...] = ()
    actor: str = ""
    address: str | None = None

    def key(self) -> str:
        return pending_delete_key(self.registry, self.repository, self.digest)

    def joined(self, event: RegistryEvent) -> PendingDelete:
        """With what ``event`` (one of this delete's) adds: its tag, an earlier time, its sender."""
        tags = self.tags if not event.tag or event.tag in self.tags else (*self.tags, event.tag)
        return replace(self, tags=tags, at=min(self.at, event.at), actor=self.actor or event.actor or "",
                       address=self.address or event.address)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "tags": list(self.tags)}, sort_keys=True)

    @classmethod
    def from_json(cls, value: str | bytes) -> PendingDelete:
        data: dict[str, Any] = json.loads(value)
        return cls(registry=str(data["registry"]), repository=str(data["repository"]), digest=str(data["digest"]),
                   at=float(data["at"]), tags=tuple(str(tag) for tag in data.get("tags", ())),
                   actor=str(data.get("actor", "")), address=data.get("address"))


def _pending(reads: _Watching, key: str) -> PendingDelete | None:
    reads.watch(key)
    raw = reads.get(key)
    if not raw:
        return None
    try:
        return PendingDelete.from_json(raw)
    except (ValueError, KeyError, TypeError):
        log.warning("registry events: unreadable pending delete under %s; started again", key)
        return None


def _started(event: RegistryEvent, digest: str) -> PendingDelete:
    return PendingDelete(registry=event.registry, repository=event.repository, digest=digest, at=event.at,
                         actor=event.actor or "", address=event.address)


def _manifest_deleted(event: RegistryEvent, registry: RegistryConfig, reads: _Watching) -> Decision:
    assert event.digest
    mark = registry_delete_key(event.registry, event.repository, event.digest)
    reads.watch(mark)
    if reads.get(mark):
        return Decision()  # this delete was announced already
    pending = _pending(reads, pending_delete_key(event.registry, event.repository, event.digest))
    return Decision(gather=(pending or _started(event, event.digest)).joined(event))


def _latest_pending(reads: _Watching, event: RegistryEvent) -> PendingDelete | None:
    """The delete being gathered in the event's repository that began last (for a tag regops knew nothing of)."""
    prefix = pending_delete_key(event.registry, event.repository, "")
    reads.watch(PENDING_DELETES_DUE_KEY)
    found = [pending for member in reads.zrange(PENDING_DELETES_DUE_KEY, 0, -1) or ()
             if as_str(member).startswith(prefix) and (pending := _pending(reads, as_str(member))) is not None]
    return max(found, key=lambda pending: pending.at) if found else None


def _tag_deleted(event: RegistryEvent, registry: RegistryConfig, reads: _Watching) -> Decision:
    assert event.tag
    reference = reference_of(registry.server, event.repository, event.tag)
    head = _head(reads, reference)
    digest = (head.digest or head.previous) if head is not None else event.digest
    if digest is None:
        pending = _latest_pending(reads, event)
        if pending is None:
            log.info("registry event %s: tag %s of %s deleted, a tag regops knew nothing of", event.id, event.tag,
                     event.repository)
            return Decision()
        return Decision(gather=pending.joined(event))
    mark = registry_delete_key(event.registry, event.repository, digest)
    reads.watch(mark)
    if reads.get(mark):
        # Its manifest's delete was announced without it: only the history has something to learn.
        if head is not None and head.digest == digest:
            return Decision(changes=(_change(event, reference, None, digest, None),))
        return Decision()
    pending = _pending(reads, pending_delete_key(event.registry, event.repository, digest))
    if pending is None and head is not None and head.digest is None:
        return Decision()  # recorded as deleted already (by the regops job that deleted it), nothing gathering
    return Decision(gather=(pending or _started(event, digest)).joined(event))


def settle(key: str, registries: Mapping[str, RegistryConfig], reads: _Watching) -> Decision:
    """The gathered delete under ``key``, announced once: its digest and every tag that went with it.

    The tags are those whose events came and those the history had at the digest; each one's
    history gets the delete unless it has it already (the regops job that deleted it wrote it).
    """
    pending = _pending(reads, key)
    registry = registries.get(pending.registry) if pending is not None else None
    if pending is None or registry is None:
        return Decision(settled=key)
    digest = pending.digest
    times = tag_times_key(f"{registry.server}/{pending.repository}")
    mark = registry_delete_key(pending.registry, pending.repository, digest)
    expectation = expectation_key(pending.registry, pending.repository, digest)
    reads.watch(times, mark)
    expected = _expected(reads, expectation, digest)
    origin = RegistryEvent(registry=pending.registry, id=key, action=DELETE, repository=pending.repository,
                           at=pending.at, digest=digest, actor=pending.actor or None, address=pending.address)
    went: list[str] = []
    changes: list[TagChange] = []
    for tag in sorted(set(pending.tags) | {as_str(name) for name in reads.hkeys(times) or ()}):
        reference = reference_of(registry.server, pending.repository, tag)
        head = _head(reads, reference)
        heard = tag in pending.tags
        if (head is None and heard) or (head is not None and head.digest == digest):
            went.append(tag)
            changes.append(_change(origin, reference, None, digest, expected))
        elif head is not None and head.digest is None and head.previous == digest and (
                heard or (expected is not None and head.job_id == expected.job_id)):
            went.append(tag)  # its delete is in the history already (the job's success wrote it)
    announcement = None if reads.get(mark) else _announcement(origin, registry, DELETE, went, digest, None, expected)
    return Decision(changes=tuple(changes), announcement=announcement, forget=(expectation,) if expected else (),
                    mark=mark, settled=key)


def job_announcement(record: JobRecord, history: Sequence[TagChange], at: float) -> Announcement | None:
    """The announcement of a job's tag change (a push, promote or rollback), for a registry that sends no events.

    ``history`` is the tag's, newest first: the job's own entry gives the previous digest; none
    (the job pushed the digest the tag already had) means no change, so nothing to announce.
    """
    if not record.reference or not record.digest:
        return None
    server, repository, tag = split_reference(record.reference)
    if not tag or tag.startswith("sha256:"):
        return None
    own = next((change for change in history if change.job_id == record.job_id), None)
    if own is None:
        if history and history[0].digest == record.digest:
            return None
        previous = history[0].digest if history else None
    else:
        previous = own.previous
    return Announcement(kind=PUSH, registry=record.registry, server=server, repository=repository, tags=(tag,),
                        digest=record.digest, at=record.finished_at or at, previous=previous, who=record.requester,
                        by_slack=True, job_id=record.job_id, how=record.action)

