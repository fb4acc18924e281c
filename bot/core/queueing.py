"""Putting jobs on a Docker host's rq queue: JSON only, by dotted path, in one Redis transaction.

The job record, the front end's origin (where to report), the ``queued`` event and
the rq job itself are written in one MULTI/EXEC, so a job is either fully queued
and visible to the relay, or not queued at all.

The rq job is written here, not through ``Queue.enqueue_call``: the same hash rq's
``Job.save`` writes for such a job (:func:`rq_job_fields`; tests/bot/test_rq_job.py holds
it field for field against rq's own enqueue), the queue's key added to rq's set of queues,
the id pushed on the queue, with the key names rq's own classes give.  rq's machinery
(dependencies, rate limits, callbacks: none of which regops uses) cost a fifth of a
push's acknowledgement.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from workers.kernel.actions import TASKS
from workers.kernel.jobs import ACTIVE_STATES, EventType, JobEvent, JobRecord, JobSpec, flat_values
from workers.kernel.keys import (
    EVENTS_STREAM,
    EVENTS_STREAM_MAXLEN,
    RECENT_JOBS_KEY,
    job_key,
    origin_key,
    queue_name,
    reference_job_key,
)
from workers.kernel.values import as_str

_PREVIOUS_ACTIVE_JOB = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local state = redis.call('HGET', ARGV[1] .. id, 'state')
for i = 2, #ARGV do if state == ARGV[i] then return id end end
return false
"""
"""KEYS[1]: a reference's last job; ARGV[1]: the job-record key prefix, then the active states."""


def waiting_note(previous: bytes | str | None) -> str | None:
    """"waiting for job X (same reference)", from the answer to :meth:`JobQueue.ask_previous_job`."""
    return f"waiting for job {as_str(previous)} (same reference)" if previous else None


RECORD_TTL_SECONDS = 7 * 24 * 3600
"""How long a job record and its origin stay in Redis after being queued."""



def remember(pipe: redis.client.Pipeline, job_id: str, at: float) -> None:
    """Add the job to :data:`RECENT_JOBS_KEY` (keeping its first time) and drop ids whose records have expired."""
    pipe.zadd(RECENT_JOBS_KEY, {job_id: at}, nx=True)
    pipe.zremrangebyscore(RECENT_JOBS_KEY, "-inf", at - RECORD_TTL_SECONDS)


def rq_job_fields(func: str, kwargs: Mapping[str, Any], *, queue: str, description: str, timeout: int,
                  result_ttl: int, failure_ttl: int, at: datetime | None = None) -> dict[str, str | bytes | int]:
    """The hash ``Queue.enqueue_call(func, kwargs=kwargs, ...)`` saves for a queued job, JSON serializer.

    ``data`` is rq's call tuple (function path, no instance, no args, kwargs), JSON and zlib as rq
    stores it; empty strings where rq writes them for a job not yet started; no TTL on the hash.
    """
    stamp = utcformat(at or datetime.now(UTC))
    return {
        "created_at": stamp,
        "data": zlib.compress(json.dumps([func, None, [], kwargs]).encode("utf-8")),
        "success_callback_name": "", "failure_callback_name": "", "stopped_callback_name": "",
        "started_at": "", "ended_at": "", "last_heartbeat": "", "worker_name": "", "group_id": "",
        "origin": queue,
        "description": description,
        "enqueued_at": stamp,
        "timeout": timeout,
        "result_ttl": result_ttl,
        "failure_ttl": failure_ttl,
        "status": JobStatus.QUEUED.value,
    }


@dataclass(frozen=True)
class Origin:
    """Where a job came from: the front end, the person, and where to report to."""

    frontend: str
    user: str
    channel: str | None = None
    response_url: str | None = None

    def to_fields(self) -> dict[str, str]:
        return {k: v for k, v in flat_values(self).items() if v is not None}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Origin:
        return cls(
            frontend=fields.get("frontend", ""),
            user=fields.get("user", ""),
            channel=fields.get("channel"),
            response_url=fields.get("response_url"),
        )


class JobQueue:
    """Enqueues regops jobs onto per-host rq queues.

    ``connection`` must return bytes (``decode_responses=False``), as rq stores its job
    data zlib-compressed; the same connection carries our own keys so that one MULTI
    holds them all.
    """

    def __init__(self, connection: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        if connection.get_encoder().decode_responses:
            raise ValueError("JobQueue needs a Redis connection with decode_responses=False (rq stores bytes)")
        self._redis = connection
        self._clock = clock
        self._queues: dict[str, Queue] = {}

    def _queue(self, host: str) -> Queue:
        queue = self._queues.get(host)
        if queue is None:
            queue = Queue(queue_name(host), connection=self._redis, serializer=JSONSerializer)
            self._queues[host] = queue
        return queue

    def pipeline(self) -> redis.client.Pipeline:
        """A transaction to put more writes (e.g. the audit entry) beside an enqueue."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.multi()  # explicit, so rq adds its commands to our transaction instead of starting one
        return pipe

    def enqueue(self, record: JobRecord, spec: JobSpec, origin: Origin, timeout: int,
                pipeline: redis.client.Pipeline | None = None) -> None:
        """Queue the job; with ``pipeline`` (already in MULTI) the caller executes it."""
        now = record.queued_at if record.queued_at is not None else self._clock()
        event = JobEvent(job_id=record.job_id, type=EventType.QUEUED.value, at=now)
        pipe = pipeline if pipeline is not None else self.pipeline()
        pipe.hset(job_key(record.job_id), mapping=record.to_fields())
        pipe.expire(job_key(record.job_id), RECORD_TTL_SECONDS)
        pipe.hset(origin_key(record.job_id), mapping=origin.to_fields())
        pipe.expire(origin_key(record.job_id), RECORD_TTL_SECONDS)
        pipe.xadd(EVENTS_STREAM, event.to_fields(), maxlen=EVENTS_STREAM_MAXLEN, approximate=True)
        remember(pipe, record.job_id, now)
        if record.reference:
            pipe.set(reference_job_key(record.reference), record.job_id, ex=RECORD_TTL_SECONDS)
        queue = self._queue(record.host)
        pipe.sadd(queue.redis_queues_keys, queue.key)
        pipe.hset(Job.key_for(spec.job_id), mapping=rq_job_fields(  # type: ignore[arg-type]
            TASKS[spec.action], {"spec": spec.to_dict()}, queue=queue.name,
            description=f"regops {spec.action} {spec.reference or spec.server}", timeout=timeout,
            result_ttl=RECORD_TTL_SECONDS, failure_ttl=RECORD_TTL_SECONDS))
        pipe.rpush(queue.key, spec.job_id)
        if pipeline is None:
            pipe.execute()

    @staticmethod
    def ask_previous_job(pipe: redis.client.Pipeline, reference: str) -> None:
        """Add to ``pipe`` (not in MULTI) the question whose answer :func:`waiting_note` reads.

        A worker takes one job per reference at a time (the reference lock), so a new job of the
        same reference waits for the one last queued for it while that one is queued or running.
        One script, so the question costs no round trip of its own.
        """
        pipe.eval(_PREVIOUS_ACTIVE_JOB, 1, reference_job_key(reference), job_key(""), *sorted(ACTIVE_STATES))

    def queue(self, host: str) -> Queue:
        """The rq queue of Docker host ``host`` (JSON serializer, bytes connection)."""
        return self._queue(host)

    @property
    def connection(self) -> redis.Redis:
        """The bytes-mode connection the queues use."""
        return self._redis
