"""EventWriter against a real Redis: the record and the stream change together."""

from __future__ import annotations

import redis

from workers.contracts import EVENTS_STREAM, JobEvent, JobRecord, job_key
from workers.events import EventWriter


def fields(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_lifecycle_updates_record_and_stream(redis_client: redis.Redis) -> None:
    clock = iter([10.0, 11.0, 12.5]).__next__
    writer = EventWriter(redis_client, clock=clock)
    redis_client.hset(
        job_key("j1"),
        mapping={
            "job_id": "j1",
            "action": "push",
            "registry": "main",
            "host": "build-1",
            "requester": "U1",
            "state": "queued",
        },
    )
    writer.started("j1")
    writer.progress("j1", 40)
    writer.succeeded("j1", digest="sha256:" + "a" * 64, message="pushed x")

    record = JobRecord.from_fields(fields(redis_client.hgetall(job_key("j1"))))
    assert (record.state, record.started_at, record.finished_at) == ("succeeded", 10.0, 12.5)
    assert (record.progress, record.digest, record.message) == (100, "sha256:" + "a" * 64, "pushed x")
    assert record.duration == 2.5

    entries = redis_client.xrange(EVENTS_STREAM)
    events = [JobEvent.from_fields(fields(raw)) for _, raw in entries]
    assert [e.type for e in events] == ["started", "progress", "succeeded"]
    assert events[1].progress == 40


def test_failed_sets_reason_and_message(redis_client: redis.Redis) -> None:
    writer = EventWriter(redis_client)
    entry_id = writer.failed("j2", "auth_failed", "registry r rejected the worker's credentials")
    record = fields(redis_client.hgetall(job_key("j2")))
    assert record["state"] == "failed" and record["reason"] == "auth_failed"
    ((stream_id, raw),) = redis_client.xrange(EVENTS_STREAM)
    assert stream_id.decode() == entry_id
    assert fields(raw)["message"] == "registry r rejected the worker's credentials"
