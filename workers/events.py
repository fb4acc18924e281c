"""Job events to Redis: each one updates the job record and is appended to the events stream, atomically.

A terminal event (succeeded/failed) is also appended to the audit stream in the
same transaction, so a job's outcome is never recorded without its audit entry.
The job's heartbeat key is set by the ``started`` event and deleted by a terminal or
hand-back event in the same transaction too: a record that says running always has
a heartbeat until the worker dies.  A success also carries, in the same transaction, the
tag changes it made (the tags' history, less what the registry's event of the same change
recorded first) and a query's answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from workers.kernel.audit import AuditEntry, AuditKind
from workers.kernel.history import TagChange, record_changes
from workers.kernel.jobs import TERMINAL_EVENTS, EventType, FailureReason, JobEvent, state_update
from workers.kernel.keys import (
    AUDIT_STREAM,
    EVENTS_STREAM,
    EVENTS_STREAM_MAXLEN,
    HEARTBEAT_TTL_SECONDS,
    answer_key,
    heartbeat_key,
    history_key,
    job_key,
)
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

ANSWER_TTL_SECONDS = 3600
"""How long a query's answer stays for the relay (or the console) to deliver."""


class EventWriter:
    """Writes :class:`JobEvent` s; the bot's relay reads them back from :data:`EVENTS_STREAM`."""

    def __init__(self, connection: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = connection
        self._clock = clock

    def emit(self, event: JobEvent, *, worker: str | None = None, changes: Sequence[TagChange] = (),
             answer: str | None = None) -> str:
        """HSET the record and XADD the event in one MULTI/EXEC; returns the stream entry id.

        A terminal event's audit entry joins the same transaction.  With ``worker`` (its
        name) the job's heartbeat key is set too; a terminal or queued event deletes it.
        ``changes`` go to the tags' history and ``answer`` (JSON) is kept for
        :data:`ANSWER_TTL_SECONDS` under :func:`answer_key`, both in the same transaction.
        """
        # redis-py's stubs want Mapping[bytes | str | ..., ...]; str keys and values are fine.
        record: dict[Any, Any] = state_update(event)
        fields: dict[Any, Any] = event.to_fields()
        audit = self._audit_entry(event) if event.type in TERMINAL_EVENTS else None
        while True:
            with self._redis.pipeline(transaction=True) as pipe:
                try:
                    fresh = self._not_yet_recorded(pipe, changes) if changes else ()
                    pipe.multi()
                    pipe.hset(job_key(event.job_id), mapping=record)
                    if answer is not None:
                        pipe.set(answer_key(event.job_id), answer, ex=ANSWER_TTL_SECONDS)
                    pipe.xadd(EVENTS_STREAM, fields, maxlen=EVENTS_STREAM_MAXLEN, approximate=True)
                    if audit is not None:
                        # No MAXLEN: the audit trail is never trimmed.
                        audit_fields: dict[Any, Any] = audit.to_fields()
                        pipe.xadd(AUDIT_STREAM, audit_fields)
                    if worker is not None:
                        pipe.set(heartbeat_key(event.job_id), worker, ex=HEARTBEAT_TTL_SECONDS)
                    elif event.type in TERMINAL_EVENTS or event.type == EventType.QUEUED.value:
                        pipe.delete(heartbeat_key(event.job_id))
                    record_changes(pipe, fresh)
                    entry_id = pipe.execute()[2 if answer is not None else 1]
                except redis.WatchError:
                    continue  # the registry's event of this change was recorded meanwhile: look again
            break
        log.debug("job %s: %s event %s", event.job_id, event.type, entry_id)
        return as_str(entry_id)

    @staticmethod
    def _not_yet_recorded(pipe: Any, changes: Sequence[TagChange]) -> tuple[TagChange, ...]:
        """``changes`` less those the registry's event of this job already put in the history (watched).

        The bot's consumer of registry events records a regops job's change as the job's when the
        registry's event for it comes first; the job's success must not record it again.
        """
        keys = [history_key(change.reference) for change in changes]
        pipe.watch(*keys)
        fresh = []
        for key, change in zip(keys, changes, strict=True):
            head = next(iter(pipe.lrange(key, 0, 0) or ()), None)
            try:
                known = TagChange.from_json(head) if head else None
            except (ValueError, KeyError, TypeError):
                known = None
            if (known is not None and change.job_id is not None and known.job_id == change.job_id
                    and known.digest == change.digest):
                continue
            fresh.append(change)
        return tuple(fresh)

    def _audit_entry(self, event: JobEvent) -> AuditEntry:
        # Read outside the transaction: MULTI cannot branch on a value it reads.
        requester = self._redis.hget(job_key(event.job_id), "requester")
        if isinstance(requester, bytes):
            requester = requester.decode(errors="replace")
        if event.type == EventType.SUCCEEDED.value:
            outcome = event.digest or event.message or ""
        else:
            outcome = ": ".join(part for part in (event.reason, event.message) if part)
        entry = AuditEntry(at=event.at, user=requester or "", channel="", kind=AuditKind.JOB.value,
                           command="", decision=event.type, job_id=event.job_id, outcome=outcome)
        entry.validate()
        return entry

    def started(self, job_id: str, worker: str | None = None) -> str:
        """The job runs; with ``worker`` its heartbeat key exists from this event on."""
        return self.emit(JobEvent(job_id, EventType.STARTED.value, self._clock()), worker=worker)

    def progress(self, job_id: str, percent: int | None = None, *, message: str | None = None) -> str:
        """A new percentage, or a note shown while the job runs (``message=""`` clears it)."""
        return self.emit(
            JobEvent(job_id, EventType.PROGRESS.value, self._clock(), progress=percent, message=message)
        )

    def handed_back(self, job_id: str, message: str) -> str:
        """The job is queued again (its worker stopped before it finished); its heartbeat goes."""
        return self.emit(JobEvent(job_id, EventType.QUEUED.value, self._clock(), progress=0, message=message))

    def succeeded(self, job_id: str, *, digest: str | None = None, message: str | None = None,
                  changes: Sequence[TagChange] = (), answer: str | None = None) -> str:
        return self.emit(
            JobEvent(job_id, EventType.SUCCEEDED.value, self._clock(), digest=digest, message=message),
            changes=changes, answer=answer,
        )

    def failed(self, job_id: str, reason: FailureReason | str, message: str) -> str:
        reason_value = FailureReason(reason).value
        return self.emit(
            JobEvent(job_id, EventType.FAILED.value, self._clock(), reason=reason_value, message=message)
        )
