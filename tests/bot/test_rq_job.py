"""The rq job JobQueue writes itself is the one rq's own enqueue writes, and rq reads it back as such.

bot/core/queueing.py writes the rq job hash, the queue push and rq's set of queues in the
bot's own transaction instead of calling ``Queue.enqueue_call``.  Here the same job is queued
both ways on a real Redis, and every key rq wrote must be written the same way (timestamps
aside, whose format is checked); rq's Job.fetch must then read the bot's job as rq's own.
A real rq worker running such a job end to end is tests/e2e (test_slack_pipeline.py,
test_job_commands.py) and tests/workers/test_worker.py.
"""

from __future__ import annotations

import re
import zlib

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from bot.core.queueing import RECORD_TTL_SECONDS, JobQueue, Origin
from workers.kernel.actions import TASKS
from workers.kernel.jobs import JobRecord, JobSpec

STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
HOST = "build-1"


def _spec(job_id: str) -> JobSpec:
    return JobSpec(job_id=job_id, action="push", registry="main", server="registry.example.com:5000",
                   reference="registry.example.com:5000/team/api:1.2", source="api:1.2", requester="U0DEV1")


def _by_rq(connection: redis.Redis, spec: JobSpec, timeout: int) -> None:
    queue = Queue(f"regops.{HOST}", connection=connection, serializer=JSONSerializer)
    pipe = connection.pipeline(transaction=True)
    pipe.multi()
    queue.enqueue_call(func=TASKS[spec.action], kwargs={"spec": spec.to_dict()}, job_id=spec.job_id,
                       timeout=timeout, result_ttl=RECORD_TTL_SECONDS, failure_ttl=RECORD_TTL_SECONDS,
                       description=f"regops {spec.action} {spec.reference or spec.server}", pipeline=pipe)
    pipe.execute()


def _by_the_bot(connection: redis.Redis, spec: JobSpec, timeout: int) -> None:
    record = JobRecord(job_id=spec.job_id, action=spec.action, registry=spec.registry, host=HOST,
                       requester=spec.requester, reference=spec.reference, source=spec.source, queued_at=1.0)
    JobQueue(connection).enqueue(record, spec, Origin(frontend="slack", user="U0DEV1", channel="C0OPS"), timeout)


def _rq_state(connection: redis.Redis, job_id: str) -> dict[str, object]:
    job = connection.hgetall(f"rq:job:{job_id}")
    stamps = {name: job.pop(name) for name in (b"created_at", b"enqueued_at")}
    assert all(STAMP.fullmatch(value) for value in stamps.values()), stamps
    job[b"data"] = zlib.decompress(job[b"data"])
    return {"job": job, "ttl": connection.ttl(f"rq:job:{job_id}"),
            "queue": connection.lrange(f"rq:queue:regops.{HOST}", 0, -1),
            "queues": connection.smembers("rq:queues")}


def test_the_bots_rq_job_is_the_one_rq_writes(redis_client: redis.Redis) -> None:
    _by_rq(redis_client, _spec("a1b2c3d4e5f6"), 1800)
    expected = _rq_state(redis_client, "a1b2c3d4e5f6")
    redis_client.flushdb()
    _by_the_bot(redis_client, _spec("a1b2c3d4e5f6"), 1800)
    got = _rq_state(redis_client, "a1b2c3d4e5f6")
    assert got == expected
    assert expected["queue"] == [b"a1b2c3d4e5f6"] and expected["ttl"] == -1
    assert set(expected["job"]) >= {b"data", b"origin", b"status", b"timeout", b"description"}  # type: ignore[arg-type]


def test_rq_reads_the_bots_job_as_its_own(redis_client: redis.Redis) -> None:
    spec = _spec("0a0b0c0d0e0f")
    _by_the_bot(redis_client, spec, 600)
    job = Job.fetch("0a0b0c0d0e0f", connection=redis_client, serializer=JSONSerializer)
    assert job.func_name == "workers.tasks.push"
    assert job.args == [] and job.kwargs == {"spec": spec.to_dict()}
    assert job.origin == "regops.build-1" and job.get_status() == "queued"
    assert job.timeout == 600 and job.result_ttl == RECORD_TTL_SECONDS and job.failure_ttl == RECORD_TTL_SECONDS
    assert job.description == "regops push registry.example.com:5000/team/api:1.2"
    assert job.enqueued_at is not None and job.created_at is not None
    queue = Queue("regops.build-1", connection=redis_client, serializer=JSONSerializer)
    assert queue.job_ids == ["0a0b0c0d0e0f"] and queue in Queue.all(connection=redis_client)
