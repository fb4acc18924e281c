"""Jobs whose worker died: a running job with no heartbeat is reported failed, in its own message.

rq's ``on_failure`` never runs when the work horse is SIGKILLed or OOM-killed, and the
job would stay "started" until a cleanup long after its timeout.  Workers renew a
heartbeat key while a job runs (``contracts.heartbeat_key``); the relay remembers which
jobs are running, and this sweep fails those whose heartbeat is gone, through the same
event path as any other outcome, so the channel hears about it within a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from workers.kernel.audit import AuditEntry
from workers.kernel.jobs import FAILURE_MESSAGES, EventType, FailureReason, JobEvent, JobState, state_update
from workers.kernel.keys import (
    AUDIT_STREAM,
    EVENTS_STREAM,
    EVENTS_STREAM_MAXLEN,
    HEARTBEAT_TTL_SECONDS,
    RUNNING_JOBS_KEY,
    heartbeat_key,
    job_key,
)

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0


class Watchdog:
    def __init__(self, connection: redis.Redis, clock: Callable[[], float] = time.time,
                 grace: float = HEARTBEAT_TTL_SECONDS) -> None:
        self._redis = connection
        self._clock = clock
        self._grace = grace
        self._last = 0.0

    def observe(self, event_type: str, job_id: str) -> None:
        """Called by the relay for every event: keeps the set of running jobs."""
        if event_type in (EventType.STARTED.value, EventType.PROGRESS.value):
            self._redis.sadd(RUNNING_JOBS_KEY, job_id)
        elif event_type in (EventType.SUCCEEDED.value, EventType.FAILED.value, "cancelled"):
            self._redis.srem(RUNNING_JOBS_KEY, job_id)

    def sweep(self) -> list[str]:
        """Fail running jobs whose heartbeat is gone; at most every few seconds. Returns their ids."""
        now = self._clock()
        if now - self._last < SWEEP_SECONDS:
            return []
        self._last = now
        lost = []
        for job_id in self._redis.smembers(RUNNING_JOBS_KEY):
            if self._fail_if_lost(job_id, now):
                lost.append(job_id)
        return lost

    def _fail_if_lost(self, job_id: str, now: float) -> bool:
        key = job_key(job_id)
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(key, heartbeat_key(job_id))
                fields = pipe.hgetall(key)
                if not fields or fields.get("state") != JobState.RUNNING:
                    pipe.multi()
                    pipe.srem(RUNNING_JOBS_KEY, job_id)
                    pipe.execute()
                    return False
                started = float(fields.get("started_at") or 0)
                if pipe.exists(heartbeat_key(job_id)) or now - started < self._grace:
                    return False
                event = JobEvent(job_id=job_id, type=EventType.FAILED.value, at=now,
                                 reason=FailureReason.WORKER_LOST.value,
                                 message=FAILURE_MESSAGES[FailureReason.WORKER_LOST.value])
                entry = AuditEntry(at=now, user=fields.get("requester", ""), channel="", kind="job",
                                   command="", decision="failed", rule="", job_id=job_id,
                                   outcome=f"{FailureReason.WORKER_LOST.value}: no heartbeat from its worker")
                pipe.multi()
                pipe.hset(key, mapping=state_update(event))
                pipe.xadd(EVENTS_STREAM, event.to_fields(), maxlen=EVENTS_STREAM_MAXLEN, approximate=True)
                pipe.xadd(AUDIT_STREAM, entry.to_fields())
                pipe.srem(RUNNING_JOBS_KEY, job_id)
                pipe.execute()
            except redis.WatchError:
                return False  # the job moved on meanwhile: look again next sweep
        log.warning("job %s: no heartbeat from its worker; reported failed (worker lost)", job_id)
        return True
