"""Approval transitions on real Redis: exactly one winner, whatever races."""

from __future__ import annotations

import threading

import pytest
import redis
from rq import Queue

from bot.core.access import Policy
from bot.core.approvals import Approvals, Outcome, read_view
from bot.core.queueing import JobQueue, Origin
from workers.kernel.config import parse_config
from workers.kernel.jobs import JobRecord, JobSpec, JobState
from workers.kernel.keys import PENDING_APPROVALS_KEY, job_key, queue_name

CONFIG = {
    "registries": {"main": {"server": "127.0.0.1:5000", "services_hostname": "namespace.example.com",
                            "username": "u", "password_env": "REGISTRY_PASSWORD"}},
    "hosts": ["build-1"],
    "access": {"roles": {"admin": {"actions": ["*"]}, "dev": {"actions": ["push"]}},
               "grants": [{"role": "admin", "users": ["U0A1", "U0A2", "U0A3"]}, {"role": "dev", "users": ["U0DEV"]}],
               "approvals": [{"tags": ["latest"], "approvers": ["admin"], "required": 1, "expires_in": "30m"}]},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def raw(text_redis: redis.Redis) -> redis.Redis:
    kwargs = text_redis.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))


def ask(raw: redis.Redis, clock: Clock, job_id: str = "0000000000aa") -> Approvals:
    config = parse_config(CONFIG)
    approvals = Approvals(raw, JobQueue(raw), Policy(config.access), clock=clock)
    ref = "127.0.0.1:5000/com.example.namespace/app:latest"
    record = JobRecord(job_id=job_id, action="push", registry="main", host="build-1", requester="U0DEV",
                       reference=ref, source="app:latest", queued_at=clock())
    spec = JobSpec(job_id=job_id, action="push", registry="main", server="127.0.0.1:5000", reference=ref,
                   source="app:latest", requester="U0DEV")
    pipe = JobQueue(raw).pipeline()
    approvals.request(record, spec, Origin("slack", "U0DEV", "C0OPS"), config.access.approvals[0], 60, pipe)
    pipe.execute()
    return approvals


def test_a_request_queues_nothing_until_approved(raw: redis.Redis) -> None:
    clock = Clock()
    approvals = ask(raw, clock)
    assert Queue(queue_name("build-1"), connection=raw).count == 0
    assert raw.hget(job_key("0000000000aa"), "state") == JobState.AWAITING_APPROVAL.encode()
    assert approvals.approve("0000000000aa", "U0DEV", "C0OPS").outcome is Outcome.REFUSED  # self
    assert approvals.approve("0000000000aa", "U0NOBODY", "C0OPS").outcome is Outcome.REFUSED
    assert Queue(queue_name("build-1"), connection=raw).count == 0
    assert approvals.approve("0000000000aa", "U0A1", "C0OPS").outcome is Outcome.APPROVED
    assert Queue(queue_name("build-1"), connection=raw).job_ids == ["0000000000aa"]
    assert approvals.reject("0000000000aa", "U0A2", "C0OPS").outcome is Outcome.CLOSED


def test_racing_approvals_queue_the_job_exactly_once(raw: redis.Redis) -> None:
    clock = Clock()
    approvals = ask(raw, clock)
    results: list[Outcome] = []
    barrier = threading.Barrier(3)

    def click(user: str) -> None:
        barrier.wait()
        results.append(approvals.approve("0000000000aa", user, "C0OPS").outcome)

    threads = [threading.Thread(target=click, args=(u,)) for u in ("U0A1", "U0A2", "U0A3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.value for r in results) == ["approved", "closed", "closed"]
    assert Queue(queue_name("build-1"), connection=raw).count == 1


def test_expiry_closes_the_request_and_a_late_click_changes_nothing(raw: redis.Redis) -> None:
    clock = Clock()
    approvals = ask(raw, clock)
    assert approvals.expire_due() == []
    clock.now += 1801
    assert approvals.expire_due() == ["0000000000aa"]
    assert approvals.expire_due() == []
    view = read_view(raw, "0000000000aa")
    assert view is not None and view.state == JobState.EXPIRED
    assert raw.zcard(PENDING_APPROVALS_KEY) == 0
    assert approvals.approve("0000000000aa", "U0A1", "C0OPS").outcome is Outcome.CLOSED
    assert Queue(queue_name("build-1"), connection=raw).count == 0


def test_a_click_after_the_deadline_but_before_the_sweep_expires_it(raw: redis.Redis) -> None:
    clock = Clock()
    approvals = ask(raw, clock)
    clock.now += 1801
    assert approvals.approve("0000000000aa", "U0A1", "C0OPS").outcome is Outcome.EXPIRED
    assert Queue(queue_name("build-1"), connection=raw).count == 0
