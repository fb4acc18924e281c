"""Job events to Redis: each one updates the job record and is appended to the events stream, atomically."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from workers.contracts import (
    EVENTS_STREAM,
    EVENTS_STREAM_MAXLEN,
    EventType,
    FailureReason,
    JobEvent,
    job_key,
    state_update,
)

log = logging.getLogger(__name__)


class EventWriter:
    """Writes :class:`JobEvent` s; the bot's relay reads them back from :data:`EVENTS_STREAM`."""

    def __init__(self, connection: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = connection
        self._clock = clock

    def emit(self, event: JobEvent) -> str:
        """HSET the record and XADD the event in one MULTI/EXEC; returns the stream entry id."""
        # redis-py's stubs want Mapping[bytes | str | ..., ...]; str keys and values are fine.
        record: dict[Any, Any] = state_update(event)
        fields: dict[Any, Any] = event.to_fields()
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(event.job_id), mapping=record)
            pipe.xadd(EVENTS_STREAM, fields, maxlen=EVENTS_STREAM_MAXLEN, approximate=True)
            _, entry_id = pipe.execute()
        log.debug("job %s: %s event %s", event.job_id, event.type, entry_id)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def started(self, job_id: str) -> str:
        return self.emit(JobEvent(job_id, EventType.STARTED.value, self._clock()))

    def progress(self, job_id: str, percent: int) -> str:
        return self.emit(JobEvent(job_id, EventType.PROGRESS.value, self._clock(), progress=percent))

    def succeeded(self, job_id: str, *, digest: str | None = None, message: str | None = None) -> str:
        return self.emit(
            JobEvent(job_id, EventType.SUCCEEDED.value, self._clock(), digest=digest, message=message)
        )

    def failed(self, job_id: str, reason: FailureReason | str, message: str) -> str:
        reason_value = FailureReason(reason).value
        return self.emit(
            JobEvent(job_id, EventType.FAILED.value, self._clock(), reason=reason_value, message=message)
        )
