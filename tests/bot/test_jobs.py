"""Job queries, cancellation and request dedupe on real Redis (no worker: rq's books are set up by hand)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis
from rq.job import JobStatus
from rq.registry import CanceledJobRegistry, StartedJobRegistry
from rq.utils import now as rq_now
from rq.utils import utcformat

from bot.core.approvals import Outcome
from bot.core.assembly import build_core
from bot.core.jobs import CancelOutcome, Jobs, image_and_tag
from bot.core.replies import ReplyKind, Request
from bot.core.service import Service
from tests.support.texts import slack
from workers.kernel.config import parse_config
from workers.kernel.jobs import JobRecord
from workers.kernel.keys import (
    AUDIT_STREAM,
    EVENTS_STREAM,
    RECENT_JOBS_KEY,
    approval_key,
    job_key,
    queue_name,
    rq_queue_key,
    rq_workers_key,
)

CONFIG = {
    "registries": {"main": {"server": "dockerhub.example.com:5100", "services_hostname": "namespace.example.com",
                            "username": "user001@namespace.example.com", "password_env": "REGISTRY_PASSWORD"}},
    "default_registry": "main",
    "hosts": ["build-1", "build-2"],
    "default_host": "build-1",
    "access": {
        "roles": {"admin": {"actions": ["*"]},
                  "deployer": {"actions": ["push", "pull", "tag", "login"], "images": ["centos7-*"]},
                  "operator": {"actions": ["status", "jobs", "cancel", "hosts"], "images": ["centos7-*"]}},
        "grants": [{"role": "admin", "users": ["U0ADMIN"]},
                   {"role": "deployer", "users": ["U0DEV1", "U0DEV2", "U0OPS"]},
                   {"role": "operator", "users": ["U0OPS"]}],
        "approvals": [{"actions": ["push"], "images": ["*"], "tags": ["prod"], "approvers": ["admin"]}],
    },
}


def bytes_redis(connection: redis.Redis) -> redis.Redis:
    kwargs = connection.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class Stops:
    """Stands in for rq's stop-job command: records it and plays what the worker would do."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.then: Callable[[redis.Redis, str], None] = lambda _conn, _job: None

    def __call__(self, connection: redis.Redis, job_id: str) -> None:
        self.sent.append(job_id)
        self.then(connection, job_id)


@pytest.fixture
def stops() -> Stops:
    return Stops()


@pytest.fixture
def service(text_redis: redis.Redis, stops: Stops) -> Service:
    config = parse_config(CONFIG)
    ids = iter(f"{n:012x}" for n in range(1, 1000))
    clock = Clock()
    raw = bytes_redis(text_redis)
    core = build_core(config, text_redis, raw)
    jobs = Jobs(raw, core.queue, core.policy, config, clock=clock, stop_job=stops, stop_wait=0.5)
    return Service(config, core.policy, core.queue, audit=core.audit, approvals=core.approvals,
                   job_ids=lambda: next(ids), clock=clock, jobs=jobs)


def run(service: Service, user: str, text: str, key: str | None = None) -> tuple[ReplyKind, str]:
    reply = service.handle(Request(user_id=user, text=text, channel_id="C0OPS", idempotency_key=key))
    return reply.kind, slack(reply.text)


def queue(service: Service, user: str, text: str) -> str:
    reply = service.handle(Request(user_id=user, text=text, channel_id="C0OPS"))
    assert reply.job is not None, slack(reply.text)
    return reply.job.job_id


def record(connection: redis.Redis, job_id: str) -> JobRecord:
    return JobRecord.from_fields(connection.hgetall(job_key(job_id)))


def start(connection: redis.Redis, job_id: str, host: str = "build-1") -> None:
    """What a worker does when it takes the job: off the queue, rq status started, record running."""
    connection.lrem(rq_queue_key(host), 0, job_id)
    connection.hset(f"rq:job:{job_id}", mapping={"status": "started", "worker_name": "w1"})
    connection.hset(job_key(job_id), mapping={"state": "running", "started_at": "1000000.5"})


def register_worker(connection: redis.Redis, host: str, name: str, *, age: float = 0.0) -> None:
    beat = utcformat(rq_now()) if age == 0 else "2000-01-01T00:00:00.000000Z"
    connection.sadd(rq_workers_key(host), f"rq:worker:{name}")
    connection.hset(f"rq:worker:{name}", mapping={"last_heartbeat": beat, "queues": queue_name(host)})


# ---- listing and status ---------------------------------------------------------------------------


def test_jobs_are_listed_newest_first_and_only_where_the_user_may_see_them(
        service: Service, text_redis: redis.Redis) -> None:
    first = queue(service, "U0DEV1", "push centos7-a 1")
    second = queue(service, "U0DEV2", "push centos7-b 1")
    third = queue(service, "U0ADMIN", "push web 1")
    assert [m for m in text_redis.zrevrange(RECENT_JOBS_KEY, 0, -1)] == [third, second, first]

    _, admin = run(service, "U0ADMIN", "jobs")
    assert admin.index(third) < admin.index(second) < admin.index(first)
    _, dev = run(service, "U0DEV1", "jobs")
    assert first in dev and second not in dev and third not in dev  # no `jobs` role: only their own
    _, ops = run(service, "U0OPS", "jobs")
    assert first in ops and second in ops and third not in ops  # `jobs` on centos7-* only
    _, mine = run(service, "U0ADMIN", "jobs --mine")
    assert third in mine and first not in mine
    _, by_image = run(service, "U0ADMIN", "jobs --image centos7-b")
    assert second in by_image and first not in by_image
    _, limited = run(service, "U0ADMIN", "jobs --limit 2")
    assert third in limited and second in limited and first not in limited
    kind, empty = run(service, "U0DEV2", "jobs --image web")
    assert kind is ReplyKind.ANSWER and "No recent jobs" in empty


def test_status_shows_the_job_to_its_requester_and_to_roles_that_allow_it(
        service: Service, text_redis: redis.Redis) -> None:
    job_id = queue(service, "U0DEV1", "push centos7-a 1.0")
    kind, text = run(service, "U0DEV1", f"status {job_id}")
    assert kind is ReplyKind.ANSWER
    for fact in (job_id, "queued", "<@U0DEV1>", "build-1", "centos7-a:1.0", "queued 20"):
        assert fact in text
    assert run(service, "U0OPS", f"status {job_id}")[0] is ReplyKind.ANSWER
    assert run(service, "U0ADMIN", f"status {job_id}")[0] is ReplyKind.ANSWER
    kind, text = run(service, "U0DEV2", f"status {job_id}")
    assert kind is ReplyKind.DENIED and "centos7-a" not in text.split("may not")[0]
    kind, text = run(service, "U0ADMIN", "status 0000000000ff")
    assert kind is ReplyKind.ANSWER and "no job `0000000000ff`" in text

    text_redis.hset(job_key(job_id), mapping={"state": "failed", "started_at": "2000010", "finished_at": "2000012",
                                              "reason": "auth_failed"})
    _, text = run(service, "U0DEV1", f"status {job_id}")
    assert "outcome: failed — registry authentication failed" in text and "took 2.0 s" in text


def test_image_and_tag_of_a_record_without_them_come_from_the_reference() -> None:
    old = JobRecord(job_id="1", action="push", registry="main", host="h", requester="U",
                    reference="dockerhub.example.com:5100/com.example.namespace/team/app:1.2",
                    extra={"server": "dockerhub.example.com:5100"})
    assert image_and_tag(old) == ("team/app", "1.2")


# ---- cancel -----------------------------------------------------------------------------------------


def test_cancel_of_a_queued_job_takes_it_off_the_queue(service: Service, text_redis: redis.Redis,
                                                       stops: Stops) -> None:
    job_id = queue(service, "U0DEV1", "push centos7-a 1")
    other = queue(service, "U0DEV1", "push centos7-a 2")
    kind, text = run(service, "U0DEV1", f"cancel {job_id}")
    assert kind is ReplyKind.ANSWER and "Cancelled" in text
    assert text_redis.lrange(f"rq:queue:{queue_name('build-1')}", 0, -1) == [other]
    assert text_redis.hget(f"rq:job:{job_id}", "status") == JobStatus.CANCELED.value
    assert CanceledJobRegistry(queue_name("build-1"), connection=bytes_redis(text_redis)).get_job_ids() == [job_id]
    cancelled = record(text_redis, job_id)
    assert cancelled.state == "cancelled" and cancelled.extra["cancelled_by"] == "U0DEV1"
    assert cancelled.finished_at is not None
    assert [f["type"] for _id, f in text_redis.xrange(EVENTS_STREAM) if f["job_id"] == job_id] == \
        ["queued", "cancelled"]
    assert stops.sent == []
    outcomes = [f for _id, f in text_redis.xrange(AUDIT_STREAM) if f["kind"] == "job" and f["job_id"] == job_id]
    assert [(f["decision"], f["user"]) for f in outcomes] == [("cancelled", "U0DEV1")]
    kind, text = run(service, "U0DEV1", f"cancel {job_id}")
    assert "already ended (cancelled)" in text


def test_a_queued_job_whose_rq_data_is_gone_is_still_cancelled_and_taken_off_the_queue(
        service: Service, text_redis: redis.Redis) -> None:
    job_id = queue(service, "U0DEV1", "push centos7-a 1")
    text_redis.delete(f"rq:job:{job_id}")
    kind, text = run(service, "U0DEV1", f"cancel {job_id}")
    assert kind is ReplyKind.ANSWER and "Cancelled" in text
    assert text_redis.lrange(f"rq:queue:{queue_name('build-1')}", 0, -1) == []
    assert record(text_redis, job_id).state == "cancelled"


def test_cancel_is_refused_to_others_without_the_cancel_role(service: Service, text_redis: redis.Redis) -> None:
    job_id = queue(service, "U0DEV1", "push centos7-a 1")
    kind, _text = run(service, "U0DEV2", f"cancel {job_id}")
    assert kind is ReplyKind.DENIED
    assert record(text_redis, job_id).state == "queued"
    assert run(service, "U0OPS", f"cancel {job_id}")[0] is ReplyKind.ANSWER
    assert record(text_redis, job_id).state == "cancelled"


def test_cancel_of_a_request_awaiting_approval_closes_it(service: Service, text_redis: redis.Redis) -> None:
    kind, _text = run(service, "U0DEV1", "push centos7-a prod")
    assert kind is ReplyKind.APPROVAL
    job_id = text_redis.zrevrange(RECENT_JOBS_KEY, 0, 0)[0]
    assert record(text_redis, job_id).state == "awaiting_approval"
    assert run(service, "U0DEV1", f"cancel {job_id}")[0] is ReplyKind.ANSWER
    assert record(text_redis, job_id).state == "cancelled"
    assert text_redis.hget(approval_key(job_id), "state") == "cancelled"
    # A late approval changes nothing and queues nothing.
    assert service._approvals.approve(job_id, "U0ADMIN", "C0OPS").outcome is Outcome.CLOSED
    assert text_redis.llen(f"rq:queue:{queue_name('build-1')}") == 0


@pytest.mark.parametrize("state", ["succeeded", "failed"])
def test_a_job_that_already_ended_cannot_be_cancelled(service: Service, text_redis: redis.Redis,
                                                      state: str) -> None:
    job_id = queue(service, "U0DEV1", "push centos7-a 1")
    text_redis.hset(job_key(job_id), "state", state)
    _kind, text = run(service, "U0DEV1", f"cancel {job_id}")
    assert f"already ended ({state})" in text
    assert record(text_redis, job_id).state == state


def test_cancel_of_a_running_job_stops_its_horse_then_marks_it_cancelled(
        service: Service, text_redis: redis.Redis, stops: Stops) -> None:
    job_id = queue(service, "U0DEV1", "push centos7-a 1")
    start(text_redis, job_id)
    stops.then = lambda conn, jid: conn.hset(f"rq:job:{jid}", "status", JobStatus.STOPPED.value)
    _kind, text = run(service, "U0DEV1", f"cancel {job_id}")
    assert stops.sent == [job_id]
    assert "stopped on its Docker host" in text
    assert record(text_redis, job_id).state == "cancelled"


def test_a_running_job_that_ends_before_the_stop_lands_keeps_its_own_outcome(
        service: Service, text_redis: redis.Redis, stops: Stops) -> None:
    """The race with the job's end: the job succeeded first, so the cancel says so and changes nothing."""
    job_id = queue(service, "U0DEV1", "push centos7-a 1")
    start(text_redis, job_id)

    def finishes(conn: redis.Redis, jid: str) -> None:
        conn.hset(job_key(jid), mapping={"state": "succeeded", "digest": "sha256:" + "a" * 64})
        conn.hset(f"rq:job:{jid}", "status", JobStatus.FINISHED.value)

    stops.then = finishes
    _kind, text = run(service, "U0DEV1", f"cancel {job_id}")
    assert "already ended (succeeded)" in text
    assert record(text_redis, job_id).state == "succeeded"
    assert not any(f["type"] == "cancelled" for _id, f in text_redis.xrange(EVENTS_STREAM))


def test_a_job_ending_between_the_read_and_the_write_of_a_cancel_is_not_overwritten(
        service: Service, text_redis: redis.Redis) -> None:
    """WATCH on the record: a write by the job's end after the cancel read makes the cancel read again."""
    job_id = queue(service, "U0DEV1", "push centos7-a 1")
    start(text_redis, job_id)
    text_redis.hset(f"rq:job:{job_id}", "status", JobStatus.STOPPED.value)
    jobs = service.jobs
    original = jobs._write_cancelled
    raced = []

    def racing_write(pipe: redis.client.Pipeline, rec: JobRecord, user: str, now: float) -> None:
        if not raced:
            raced.append(True)
            text_redis.hset(job_key(job_id), "state", "failed")  # the job's own end lands first
        original(pipe, rec, user, now)

    jobs._write_cancelled = racing_write  # type: ignore[method-assign]
    result = jobs.cancel(job_id, "U0DEV1", "C0OPS")
    assert result.outcome is CancelOutcome.ENDED
    assert record(text_redis, job_id).state == "failed"


def test_a_stop_that_does_not_take_is_reported_and_leaves_the_job_to_the_worker(
        service: Service, text_redis: redis.Redis, stops: Stops) -> None:
    job_id = queue(service, "U0DEV1", "push centos7-a 1")
    start(text_redis, job_id)
    result = service.jobs.cancel(job_id, "U0DEV1", "C0OPS")
    assert result.outcome is CancelOutcome.BUSY and stops.sent == [job_id]
    assert record(text_redis, job_id).state == "running"


# ---- hosts, the ack, dedupe --------------------------------------------------------------------------


def test_hosts_show_live_workers_queue_length_and_the_running_job(service: Service,
                                                                   text_redis: redis.Redis) -> None:
    register_worker(text_redis, "build-1", "fresh")
    register_worker(text_redis, "build-2", "stale", age=1)
    running = queue(service, "U0DEV1", "push centos7-a 1")
    queue(service, "U0DEV1", "push centos7-a 2")
    start(text_redis, running)
    raw = bytes_redis(text_redis)
    registry = StartedJobRegistry(queue_name("build-1"), connection=raw)
    text_redis.zadd(registry.key, {f"{running}:execution-1": time.time() + 600})
    kind, text = run(service, "U0ADMIN", "hosts")
    assert kind is ReplyKind.ANSWER
    line1 = next(line for line in text.splitlines() if "`build-1`" in line)
    line2 = next(line for line in text.splitlines() if "`build-2`" in line)
    assert "1 live worker(s) (`fresh`)" in line1 and "1 job(s) queued" in line1 and running in line1
    assert "no live worker" in line2 and "0 job(s) queued" in line2 and "nothing running" in line2
    assert run(service, "U0DEV1", "hosts")[0] is ReplyKind.DENIED
    assert run(service, "U0OPS", "hosts")[0] is ReplyKind.ANSWER


def test_the_ack_gives_the_job_id_as_a_word_and_the_queue_position(service: Service,
                                                                    text_redis: redis.Redis) -> None:
    register_worker(text_redis, "build-1", "fresh")
    _, first = run(service, "U0DEV1", "push centos7-a 1")
    _, second = run(service, "U0DEV1", "push centos7-a 2")
    assert " 000000000001 " in first and "position 1 in the queue for build-1" in first
    assert " 000000000002 " in second and "position 2 in the queue for build-1" in second
    assert "No worker is live" not in second
    _, elsewhere = run(service, "U0DEV1", "push centos7-a 3 --host build-2")
    assert "position 1 in the queue for build-2" in elsewhere
    assert "No worker is live for host build-2 right now" in elsewhere


def test_a_stale_or_dead_worker_is_not_live(service: Service, text_redis: redis.Redis) -> None:
    register_worker(text_redis, "build-1", "stale", age=1)
    register_worker(text_redis, "build-1", "dead")
    text_redis.hset("rq:worker:dead", "death", utcformat(rq_now()))
    _, text = run(service, "U0DEV1", "push centos7-a 1")
    assert "No worker is live for host build-1" in text


def test_the_same_request_twice_makes_one_job(service: Service, text_redis: redis.Redis) -> None:
    kind, _first = run(service, "U0DEV1", "push centos7-a 1", key="trig.1")
    assert kind is ReplyKind.QUEUED
    kind, again = run(service, "U0DEV1", "push centos7-a 1", key="trig.1")
    assert kind is ReplyKind.DUPLICATE and "already queued as job 000000000001" in again
    assert text_redis.llen(f"rq:queue:{queue_name('build-1')}") == 1
    assert len(list(text_redis.scan_iter("regops:job:*"))) == 1
    assert 0 < text_redis.ttl("regops:request:trig.1") <= 3600
    kind, _ = run(service, "U0DEV1", "push centos7-a 1", key="trig.2")
    assert kind is ReplyKind.QUEUED and text_redis.llen(f"rq:queue:{queue_name('build-1')}") == 2
    decisions = [json.loads(json.dumps(f))["decision"] for _id, f in text_redis.xrange("regops:audit")]
    assert decisions == ["queued", "answered", "queued"]


def test_a_repeated_approval_request_makes_one_request(service: Service, text_redis: redis.Redis) -> None:
    assert run(service, "U0DEV1", "push centos7-a prod", key="trig.9")[0] is ReplyKind.APPROVAL
    kind, text = run(service, "U0DEV1", "push centos7-a prod", key="trig.9")
    assert kind is ReplyKind.DUPLICATE and "000000000001" in text
    assert len(list(text_redis.scan_iter("regops:approval:*"))) == 1
