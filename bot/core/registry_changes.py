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
  the manifest event announces the delete, naming the tags whose history pointed at the digest;
  the tag events that follow add nothing.  A tag event arriving first announces its own tag.

:func:`job_announcement` makes the announcement of a job's change for a registry that sends no events.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.announcements import Announcement
from bot.core.registry_events import RegistryEvent
from workers.kernel.config.model import RegistryConfig
from workers.kernel.expectations import Expectation
from workers.kernel.history import Change, TagChange
from workers.kernel.jobs import JobRecord
from workers.kernel.keys import expectation_key, history_key, registry_delete_key, tag_times_key
from workers.kernel.references import split_reference
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

PUSH, DELETE = "push", "delete"


@dataclass(frozen=True)
class Decision:
    """What one event changes: history entries, the announcement (None: nothing to say), keys to drop or set."""

    changes: tuple[TagChange, ...] = ()
    announcement: Announcement | None = None
    forget: tuple[str, ...] = ()
    """Expectations used up by this event."""
    mark: str | None = None
    """A delete's marker, set so the events that follow it add nothing."""


class _Watching(Protocol):
    """A pipeline in WATCH mode (commands run at once and return their answers)."""

    def watch(self, *names: str) -> Any: ...
    def get(self, name: str) -> Any: ...
    def lrange(self, name: str, start: int, end: int) -> Any: ...
    def hkeys(self, name: str) -> Any: ...


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


def _manifest_deleted(event: RegistryEvent, registry: RegistryConfig, reads: _Watching) -> Decision:
    assert event.digest
    digest = event.digest
    times = tag_times_key(f"{registry.server}/{event.repository}")
    mark = registry_delete_key(event.registry, event.repository, digest)
    key = expectation_key(event.registry, event.repository, digest)
    reads.watch(times, mark)
    announced = bool(reads.get(mark))
    expected = _expected(reads, key, digest)
    went: list[str] = []
    changes: list[TagChange] = []
    for tag in sorted(as_str(name) for name in reads.hkeys(times) or ()):
        reference = reference_of(registry.server, event.repository, tag)
        head = _head(reads, reference)
        if head is None:
            continue
        if head.digest == digest:
            went.append(tag)
            changes.append(_change(event, reference, None, digest, expected))
        elif (head.digest is None and head.previous == digest and expected is not None
              and head.job_id == expected.job_id):
            went.append(tag)  # the job's success recorded this tag's delete already
    forget = (key,) if expected else ()
    if announced:
        # A tag event came first and announced its tag: only tags it could not name are news.
        fresh = [change.reference.rpartition(":")[2] for change in changes]
        announcement = (_announcement(event, registry, DELETE, fresh, digest, None, expected) if fresh else None)
        return Decision(changes=tuple(changes), announcement=announcement, forget=forget)
    return Decision(changes=tuple(changes),
                    announcement=_announcement(event, registry, DELETE, went, digest, None, expected),
                    forget=forget, mark=mark)


def _tag_deleted(event: RegistryEvent, registry: RegistryConfig, reads: _Watching) -> Decision:
    assert event.tag
    reference = reference_of(registry.server, event.repository, event.tag)
    head = _head(reads, reference)
    digest = head.digest if head is not None else event.digest
    if digest is None:
        # Already recorded as deleted (by its manifest's event or by the job), or never known.
        return Decision()
    mark = registry_delete_key(event.registry, event.repository, digest)
    reads.watch(mark)
    expected = _expected(reads, expectation_key(event.registry, event.repository, digest), digest)
    change = _change(event, reference, None, digest, expected) if head is not None else None
    changes = (change,) if change else ()
    if reads.get(mark):
        return Decision(changes=changes)  # its manifest's delete was announced
    return Decision(changes=changes,
                    announcement=_announcement(event, registry, DELETE, (event.tag,), digest, None, expected),
                    mark=mark)


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

