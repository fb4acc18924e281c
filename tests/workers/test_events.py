"""EventWriter against a real Redis: the record and the stream change together, and outcomes are audited."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis

from tests.support.services import RedisServer
from workers.events import EventWriter
from workers.kernel.audit import AuditEntry
from workers.kernel.history import TagChange, read_history, record_changes
from workers.kernel.jobs import JobEvent, JobRecord
from workers.kernel.keys import AUDIT_STREAM, EVENTS_STREAM, job_key


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


def audit_entries(connection: redis.Redis) -> list[AuditEntry]:
    return [AuditEntry.from_fields(fields(raw)) for _, raw in connection.xrange(AUDIT_STREAM)]


def queued_record(connection: redis.Redis, job_id: str, requester: str = "U0DEV1") -> None:
    connection.hset(job_key(job_id), mapping={"job_id": job_id, "action": "push", "registry": "main",
                                              "host": "build-1", "requester": requester, "state": "queued"})


def test_only_terminal_events_are_audited_with_the_requester_and_the_digest(redis_client: redis.Redis) -> None:
    writer = EventWriter(redis_client, clock=iter([1.0, 2.0, 3.5]).__next__)
    queued_record(redis_client, "j3", requester="U0DEV7")
    writer.started("j3")
    writer.progress("j3", 50)
    assert audit_entries(redis_client) == []
    writer.succeeded("j3", digest="sha256:" + "b" * 64, message="pushed x")

    (entry,) = audit_entries(redis_client)
    assert entry == AuditEntry(at=3.5, user="U0DEV7", channel="", kind="job", command="", decision="succeeded",
                               rule="", job_id="j3", outcome="sha256:" + "b" * 64)


def test_a_success_without_digest_audits_its_message(redis_client: redis.Redis) -> None:
    queued_record(redis_client, "j4")
    EventWriter(redis_client).succeeded("j4", message="logged in to 127.0.0.1:5000")
    (entry,) = audit_entries(redis_client)
    assert (entry.decision, entry.outcome, entry.user) == ("succeeded", "logged in to 127.0.0.1:5000", "U0DEV1")


def test_a_failure_audits_reason_and_message_and_an_unknown_job_has_no_user(redis_client: redis.Redis) -> None:
    EventWriter(redis_client).failed("j5", "auth_failed", "registry r rejected the worker's credentials")
    (entry,) = audit_entries(redis_client)
    assert (entry.kind, entry.decision, entry.job_id, entry.user, entry.channel) == ("job", "failed", "j5", "", "")
    assert entry.outcome == "auth_failed: registry r rejected the worker's credentials"


def test_the_audit_entry_is_written_in_the_events_transaction(redis_server: RedisServer,
                                                              redis_client: redis.Redis) -> None:
    # A user who may write the record and the events but not the audit stream: Redis rejects the
    # audit XADD while queueing it, so EXEC must abort and leave the record and the events untouched.
    name, password = f"noaudit-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    redis_client.execute_command("ACL", "SETUSER", name, "on", f">{password}", "~regops:job:*",
                                 "~regops:events", "+@all")
    limited = redis.Redis(host="127.0.0.1", port=redis_server.port, username=name, password=password)
    try:
        queued_record(redis_client, "j6")
        writer = EventWriter(limited)
        writer.started("j6")  # not terminal, no audit entry: goes through
        with pytest.raises(redis.RedisError):
            writer.succeeded("j6", digest="sha256:" + "c" * 64)
        record = fields(redis_client.hgetall(job_key("j6")))
        assert record["state"] == "running" and "digest" not in record
        assert [fields(raw)["type"] for _, raw in redis_client.xrange(EVENTS_STREAM)] == ["started"]
        assert redis_client.xlen(AUDIT_STREAM) == 0
    finally:
        limited.close()
        redis_client.execute_command("ACL", "DELUSER", name)


def test_the_audit_stream_is_appended_without_maxlen(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    # The events stream is capped; the audit stream must never be: watch the commands Redis receives.
    seen: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with redis_server.client().monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                seen.append(command["command"])
                if "XADD regops:audit" in command["command"]:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(5)
    queued_record(redis_client, "j7")
    for _ in range(50):  # MONITOR is registered asynchronously: write until it sees us
        EventWriter(redis_client).succeeded("j7", digest="sha256:" + "d" * 64)
        watcher.join(0.1)
        if not watcher.is_alive():
            break
    assert not watcher.is_alive(), "MONITOR never saw the audit XADD"
    audit_xadd = next(c for c in seen if "XADD regops:audit" in c)
    events_xadd = next(c for c in seen if "XADD regops:events" in c)
    assert "MAXLEN" not in audit_xadd.upper()
    assert "MAXLEN" in events_xadd.upper()  # proves the watch shows a MAXLEN when there is one


def test_a_change_the_registry_event_of_the_same_job_recorded_is_not_recorded_again(
        redis_client: redis.Redis) -> None:
    reference = "registry.example.com/com.example.namespace/app:latest"
    old, new = "sha256:" + "1" * 64, "sha256:" + "2" * 64

    def change(job_id: str | None, digest: str, previous: str | None, who: str = "U1") -> TagChange:
        return TagChange(at=1.0, reference=reference, digest=digest, previous=previous, who=who, how="push",
                         job_id=job_id)

    # The bot took the registry's event of job j2's push first and recorded it as j2's.
    record_changes(redis_client, [change(None, old, None, "ci"), change("j2", new, old)])
    EventWriter(redis_client).succeeded("j2", digest=new, changes=(change("j2", new, old),))
    assert [c.job_id for c in read_history(redis_client, reference)] == ["j2", None]
    # Another job's change of the same tag is recorded.
    EventWriter(redis_client).succeeded("j3", digest=old, changes=(change("j3", old, new),))
    assert [c.job_id for c in read_history(redis_client, reference)] == ["j3", "j2", None]
    assert redis_client.hget(job_key("j2"), "state") == b"succeeded"
