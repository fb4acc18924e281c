"""Limits per person on real Redis: the rate window, the open-jobs caps, exemption, counts after a job ends, races."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from rq import Queue

from bot.core.access import Policy
from bot.core.approvals import Approvals
from bot.core.audit import AuditLog
from bot.core.jobs import Jobs
from bot.core.limits import RESERVATION_GRACE_SECONDS, Limiter
from bot.core.metrics import Metrics
from bot.core.queueing import JobQueue
from bot.core.replies import Click, ClickAction, Reply, ReplyKind, Request
from bot.core.service import Service
from bot.core.watchdog import Watchdog
from tests.support.texts import slack
from workers.events import EventWriter
from workers.kernel.config import parse_config
from workers.kernel.keys import (
    AUDIT_STREAM,
    METRICS_COMMANDS_KEY,
    METRICS_LIMITED_KEY,
    RUNNING_JOBS_KEY,
    host_jobs_key,
    job_key,
    queue_name,
    user_jobs_key,
)

PUSH = "push centos7-app {tag}"


def config(**limits: Any) -> dict[str, Any]:
    return {
        "registries": {"main": {"server": "dockerhub.example.com:5100", "services_hostname": "namespace.example.com",
                                "username": "u", "password_env": "REGISTRY_PASSWORD"}},
        "hosts": ["build-1", "build-2"],
        "default_host": "build-1",
        "access": {
            "roles": {"admin": {"actions": ["*"]},
                      "deployer": {"actions": ["push", "pull", "tag", "login", "status", "jobs", "cancel"],
                                   "images": ["centos7-*"]}},
            "grants": [{"role": "admin", "users": ["U0ADMIN"]},
                       {"role": "admin", "users": ["U0LEAD"], "channels": ["C0ADMINS"]},
                       {"role": "deployer", "users": ["*"]}],
            "approvals": [{"tags": ["release"], "approvers": ["admin"], "expires_in": "10m"}],
        },
        "limits": limits,
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Stack:
    service: Service
    clock: Clock
    raw: redis.Redis
    text: redis.Redis
    approvals: Approvals
    ids: Callable[[], str]

    def send(self, user: str, text: str, channel: str = "C0OPS", trigger: str | None = None) -> Reply:
        return self.service.handle(Request(user_id=user, text=text, channel_id=channel,
                                           response_url="https://hooks.example/r", idempotency_key=trigger))

    def queued(self, host: str = "build-1") -> list[str]:
        return Queue(queue_name(host), connection=self.raw).job_ids

    def records(self) -> int:
        return sum(1 for _ in self.text.scan_iter("regops:job:*"))

    def audit(self, decision: str = "limited") -> list[Any]:
        return [entry for entry in AuditLog(self.text).entries() if entry.decision == decision]


def _bytes(connection: redis.Redis) -> redis.Redis:
    kwargs = connection.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))


def build(text_redis: redis.Redis, clock: Clock | None = None, **limits: Any) -> Stack:
    cfg = parse_config(config(**limits))
    clock = clock or Clock()
    raw = _bytes(text_redis)
    policy = Policy(cfg.access)
    queue = JobQueue(raw, clock=clock)
    approvals = Approvals(raw, queue, policy, clock=clock)
    jobs = Jobs(raw, queue, policy, cfg, clock=clock, stop_wait=0.2)
    counter = iter(range(1, 100_000))
    lock = threading.Lock()

    def ids() -> str:
        with lock:
            return f"{next(counter):012x}"

    service = Service(cfg, policy, queue, audit=AuditLog(text_redis), approvals=approvals, jobs=jobs, clock=clock,
                      job_ids=ids, metrics=Metrics(text_redis, clock=clock),
                      limits=Limiter(raw, cfg.limits, policy, clock=clock))
    return Stack(service, clock, raw, text_redis, approvals, ids)


# ---- commands a minute -----------------------------------------------------------------------


def test_the_rate_window_counts_every_command_and_refuses_past_the_limit_until_a_slot_frees(
        text_redis: redis.Redis) -> None:
    stack = build(text_redis, commands_per_minute=4, queued_per_user=50)
    assert stack.send("U0DEV1", "help").kind is ReplyKind.HELP
    stack.clock.now += 10
    assert stack.send("U0DEV1", "psuh nothing").kind is ReplyKind.USAGE_ERROR  # invalid commands count
    assert stack.send("U0DEV1", "push web latest").kind is ReplyKind.DENIED  # denied ones too
    assert stack.send("U0DEV1", PUSH.format(tag="1")).kind is ReplyKind.QUEUED
    stack.clock.now += 5

    refused = stack.send("U0DEV1", PUSH.format(tag="2"))
    assert refused.kind is ReplyKind.LIMITED
    text = slack(refused.text)
    # The first command (at t=0) leaves the window at t=60: 45 s from now.
    assert "You sent 4 commands in the last minute" in text and "`limits.commands_per_minute` is 4" in text
    assert "Try again in 45 s" in text
    assert stack.queued() == ["000000000001"] and stack.records() == 1  # nothing queued, nothing written
    # Another person is not affected.
    assert stack.send("U0DEV2", PUSH.format(tag="3")).kind is ReplyKind.QUEUED

    stack.clock.now += 45  # the help leaves the window: exactly one slot
    assert stack.send("U0DEV1", PUSH.format(tag="4")).kind is ReplyKind.QUEUED
    assert stack.send("U0DEV1", "help").kind is ReplyKind.LIMITED
    stack.clock.now += 10  # the invalid and denied commands leave it
    assert stack.send("U0DEV1", "help").kind is ReplyKind.HELP
    assert stack.send("U0DEV1", "whoami").kind is ReplyKind.ANSWER


def test_only_the_first_refusal_of_a_run_is_audited_and_every_one_is_counted(text_redis: redis.Redis) -> None:
    stack = build(text_redis, commands_per_minute=2)
    for _ in range(2):
        stack.send("U0DEV1", "help")
    for _ in range(5):
        assert stack.send("U0DEV1", PUSH.format(tag="x")).kind is ReplyKind.LIMITED
    entries = stack.audit()
    assert len(entries) == 1
    entry = entries[0]
    assert entry.kind == "command" and entry.user == "U0DEV1" and entry.command == PUSH.format(tag="x")
    assert entry.rule.startswith("limits.commands_per_minute 2; further refusals in the next 60 s are counted")
    assert text_redis.hget(METRICS_LIMITED_KEY, "commands_per_minute") == "5"
    assert text_redis.hget(METRICS_COMMANDS_KEY, "push|limited") == "5"

    stack.clock.now += 61  # the run is over: the next refusal is audited again
    stack.send("U0DEV1", "help")
    stack.send("U0DEV1", "help")
    assert stack.send("U0DEV1", "help").kind is ReplyKind.LIMITED
    assert len(stack.audit()) == 2
    assert text_redis.hget(METRICS_COMMANDS_KEY, "help|limited") == "1"


def test_a_limited_command_with_a_password_still_gets_the_rotate_warning(text_redis: redis.Redis) -> None:
    stack = build(text_redis, commands_per_minute=1)
    stack.send("U0DEV1", "help")
    reply = stack.send("U0DEV1", "push centos7-app 1 -p hunter2")
    assert reply.kind is ReplyKind.CREDENTIALS and "rotate" in slack(reply.text)
    assert all("hunter2" not in str(entry) for entry in text_redis.xrange(AUDIT_STREAM))


def test_the_window_is_shared_by_every_process_and_replica(text_redis: redis.Redis) -> None:
    clock = Clock()
    first, second = build(text_redis, clock, commands_per_minute=3), build(text_redis, clock, commands_per_minute=3)
    assert first.send("U0DEV1", "help").kind is ReplyKind.HELP
    assert second.send("U0DEV1", "help").kind is ReplyKind.HELP
    assert first.send("U0DEV1", "help").kind is ReplyKind.HELP
    assert second.send("U0DEV1", "help").kind is ReplyKind.LIMITED


def test_racing_commands_cannot_both_take_the_last_slot(text_redis: redis.Redis) -> None:
    stack = build(text_redis, commands_per_minute=5, queued_per_user=100)
    for round_ in range(3):
        stack.clock.now += 61
        for _ in range(4):
            assert stack.send("U0DEV1", "whoami").kind is ReplyKind.ANSWER
        kinds = _race(8, lambda n, r=round_: stack.send("U0DEV1", PUSH.format(tag=f"r{r}-{n}")).kind)
        assert sorted(kinds).count(ReplyKind.QUEUED) == 1, kinds
        assert kinds.count(ReplyKind.LIMITED) == 7
    assert len(stack.queued()) == 3


def _race(count: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(n: int) -> None:
        barrier.wait()
        results[n] = work(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


# ---- open jobs -------------------------------------------------------------------------------


def test_the_per_person_cap_refuses_with_the_count_and_queues_nothing(text_redis: redis.Redis) -> None:
    stack = build(text_redis, queued_per_user=2)
    assert stack.send("U0DEV1", PUSH.format(tag="1"), trigger="t1").kind is ReplyKind.QUEUED
    assert stack.send("U0DEV1", PUSH.format(tag="2"), trigger="t2").kind is ReplyKind.QUEUED
    refused = stack.send("U0DEV1", PUSH.format(tag="3"), trigger="t3")
    assert refused.kind is ReplyKind.LIMITED and refused.job is None
    text = slack(refused.text)
    assert "You have 2 jobs queued, running or awaiting approval" in text
    assert "`limits.queued_per_user` is 2" in text and "cancel JOB`" in text and "jobs --mine`" in text
    assert stack.queued() == ["000000000001", "000000000002"] and stack.records() == 2
    assert not text_redis.exists(job_key("000000000003"))
    [entry] = stack.audit()
    assert entry.rule == "limits.queued_per_user 2" and entry.job_id == ""
    assert text_redis.hget(METRICS_LIMITED_KEY, "queued_per_user") == "1"
    assert text_redis.hget(METRICS_COMMANDS_KEY, "push|limited") == "1"
    # Others still queue; cancelling one of the two frees the slot, and the refused request may be sent again.
    assert stack.send("U0DEV2", PUSH.format(tag="1")).kind is ReplyKind.QUEUED
    assert stack.send("U0DEV1", "cancel 000000000001").kind is ReplyKind.ANSWER
    assert stack.send("U0DEV1", PUSH.format(tag="3"), trigger="t3").kind is ReplyKind.QUEUED


def test_counts_follow_the_job_records_whatever_ends_a_job(text_redis: redis.Redis) -> None:
    stack = build(text_redis, queued_per_user=3, commands_per_minute=100)
    events = EventWriter(stack.raw, clock=stack.clock)

    def fill() -> list[str]:
        replies = [stack.send("U0DEV1", PUSH.format(tag=str(n))) for n in range(3)]
        assert [reply.kind for reply in replies] == [ReplyKind.QUEUED] * 3
        assert stack.send("U0DEV1", PUSH.format(tag="over")).kind is ReplyKind.LIMITED
        return [reply.job.job_id for reply in replies if reply.job is not None]

    first = fill()
    events.started(first[0])
    events.succeeded(first[0], digest="sha256:" + "a" * 64)
    events.started(first[1])
    events.failed(first[1], "registry_unreachable", "registry unreachable")
    assert stack.send("U0DEV1", "cancel " + first[2]).kind is ReplyKind.ANSWER  # cancelled while queued
    second = fill()

    # A running job whose worker died: the watchdog fails it, and its slot is free.
    events.started(second[0])
    text_redis.sadd(RUNNING_JOBS_KEY, second[0])
    stack.clock.now += 120
    assert Watchdog(text_redis, clock=stack.clock).sweep() == [second[0]]
    assert stack.send("U0DEV1", PUSH.format(tag="after-watchdog")).kind is ReplyKind.QUEUED
    assert stack.send("U0DEV1", PUSH.format(tag="over")).kind is ReplyKind.LIMITED


def test_jobs_awaiting_approval_count_until_rejected_or_expired(text_redis: redis.Redis) -> None:
    stack = build(text_redis, queued_per_user=2)
    one = stack.send("U0DEV1", "push centos7-app release")
    two = stack.send("U0DEV1", "push centos7-web release")
    assert one.kind is two.kind is ReplyKind.APPROVAL and one.job and two.job
    assert stack.send("U0DEV1", PUSH.format(tag="1")).kind is ReplyKind.LIMITED
    # Withdrawn by the requester: its slot is free.
    stack.service.click(Click(ClickAction.REJECT, one.job.job_id, "U0DEV1", "C0OPS"))
    assert stack.send("U0DEV1", PUSH.format(tag="1")).kind is ReplyKind.QUEUED
    assert stack.send("U0DEV1", PUSH.format(tag="2")).kind is ReplyKind.LIMITED
    # Expired: closed by the approvals' sweep, and the slot is free too.
    stack.clock.now += 601
    assert stack.approvals.expire_due() == [two.job.job_id]
    assert stack.send("U0DEV1", PUSH.format(tag="2")).kind is ReplyKind.QUEUED
    # Approved, a job stays open (same id, now queued): it counts as it did while awaiting approval.
    asked = stack.send("U0DEV2", "push centos7-app release")
    assert asked.job is not None
    stack.service.click(Click(ClickAction.APPROVE, asked.job.job_id, "U0ADMIN", "C0OPS"))
    assert text_redis.hget(job_key(asked.job.job_id), "state") == "queued"
    assert stack.send("U0DEV2", PUSH.format(tag="1")).kind is ReplyKind.QUEUED
    assert stack.send("U0DEV2", PUSH.format(tag="2")).kind is ReplyKind.LIMITED


def test_the_per_host_cap_counts_everyone_on_that_host(text_redis: redis.Redis) -> None:
    stack = build(text_redis, queued_per_user=10, queued_per_host=3)
    for user in ("U0DEV1", "U0DEV2", "U0DEV3"):
        assert stack.send(user, PUSH.format(tag=user)).kind is ReplyKind.QUEUED
    refused = stack.send("U0DEV4", PUSH.format(tag="4"))
    assert refused.kind is ReplyKind.LIMITED
    text = slack(refused.text)
    assert "Docker host `build-1` has 3 jobs queued, running or awaiting approval" in text
    assert "`limits.queued_per_host` is 3" in text and "`--host NAME`" in text
    assert stack.audit()[0].rule == "limits.queued_per_host 3 (host build-1)"
    assert stack.send("U0DEV4", PUSH.format(tag="4") + " --host build-2").kind is ReplyKind.QUEUED
    assert len(stack.queued("build-1")) == 3 and len(stack.queued("build-2")) == 1
    assert text_redis.zcard(host_jobs_key("build-1")) == 3


def test_racing_pushes_cannot_both_take_the_last_open_job_slot(text_redis: redis.Redis) -> None:
    stack = build(text_redis, queued_per_user=3, queued_per_host=4, commands_per_minute=1000)
    assert stack.send("U0DEV1", PUSH.format(tag="a")).kind is ReplyKind.QUEUED
    assert stack.send("U0DEV1", PUSH.format(tag="b")).kind is ReplyKind.QUEUED
    kinds = _race(10, lambda n: stack.send("U0DEV1", PUSH.format(tag=f"p{n}")).kind)
    assert kinds.count(ReplyKind.QUEUED) == 1 and kinds.count(ReplyKind.LIMITED) == 9, kinds
    # The host's last slot: one of ten people gets it.
    kinds = _race(10, lambda n: stack.send(f"U0RACE{n}", PUSH.format(tag=f"h{n}")).kind)
    assert kinds.count(ReplyKind.QUEUED) == 1 and kinds.count(ReplyKind.LIMITED) == 9, kinds
    assert len(stack.queued()) == 4 and stack.records() == 4


def test_a_slot_whose_job_was_never_written_is_freed_after_the_grace(text_redis: redis.Redis) -> None:
    stack = build(text_redis, queued_per_user=1)
    # A command that took its slot and then failed before writing the job (a serve process killed, Redis gone).
    text_redis.zadd(user_jobs_key("U0DEV1"), {"0000deadbeef": stack.clock.now})
    assert stack.send("U0DEV1", PUSH.format(tag="1")).kind is ReplyKind.LIMITED
    stack.clock.now += RESERVATION_GRACE_SECONDS + 1
    assert stack.send("U0DEV1", PUSH.format(tag="1")).kind is ReplyKind.QUEUED
    assert text_redis.zrange(user_jobs_key("U0DEV1"), 0, -1) == ["000000000002"]  # 1: the refused command's


def test_a_repeated_request_takes_no_second_slot(text_redis: redis.Redis) -> None:
    stack = build(text_redis, queued_per_user=2)
    assert stack.send("U0DEV1", PUSH.format(tag="1"), trigger="same").kind is ReplyKind.QUEUED
    assert stack.send("U0DEV1", PUSH.format(tag="1"), trigger="same").kind is ReplyKind.DUPLICATE
    assert text_redis.zcard(user_jobs_key("U0DEV1")) == 1
    assert stack.send("U0DEV1", PUSH.format(tag="2")).kind is ReplyKind.QUEUED


def test_limits_that_are_off_keep_nothing(text_redis: redis.Redis) -> None:
    stack = build(text_redis, commands_per_minute="off", queued_per_user="off", queued_per_host="off")
    for n in range(40):
        assert stack.send("U0DEV1", PUSH.format(tag=str(n))).kind is ReplyKind.QUEUED
    assert list(text_redis.scan_iter("regops:limits:*")) == []


# ---- exemption -------------------------------------------------------------------------------


def test_exempt_roles_pass_every_limit_and_their_jobs_still_count_for_the_host(text_redis: redis.Redis) -> None:
    stack = build(text_redis, commands_per_minute=2, queued_per_user=1, queued_per_host=2)
    for n in range(4):
        assert stack.send("U0ADMIN", f"push anything {n}").kind is ReplyKind.QUEUED
    assert text_redis.zcard(host_jobs_key("build-1")) == 4 and text_redis.zcard(user_jobs_key("U0ADMIN")) == 4
    assert stack.send("U0DEV1", PUSH.format(tag="1")).kind is ReplyKind.LIMITED  # the host is full
    assert stack.audit() and stack.audit()[0].user == "U0DEV1"


def test_exemption_is_by_role_in_the_commands_channel(text_redis: redis.Redis) -> None:
    stack = build(text_redis, commands_per_minute=1, exempt_roles=["admin"])
    for _ in range(3):
        assert stack.send("U0LEAD", "help", channel="C0ADMINS").kind is ReplyKind.HELP
    assert stack.send("U0LEAD", "help", channel="C0OPS").kind is ReplyKind.LIMITED  # no admin role here
    nobody_exempt = build(text_redis, commands_per_minute=1, exempt_roles=[])
    nobody_exempt.clock.now += 120
    assert nobody_exempt.send("U0ADMIN", "help").kind is ReplyKind.HELP
    assert nobody_exempt.send("U0ADMIN", "help").kind is ReplyKind.LIMITED


@pytest.mark.parametrize("limits", [{}, {"commands_per_minute": 30, "queued_per_user": 20}])
def test_the_defaults_refuse_the_flood_of_the_issue(text_redis: redis.Redis, limits: dict[str, Any]) -> None:
    stack = build(text_redis, **limits)
    kinds = [stack.send("U0DEV1", PUSH.format(tag=str(n))).kind for n in range(60)]
    assert kinds.count(ReplyKind.QUEUED) == 20 and kinds.count(ReplyKind.LIMITED) == 40
    assert len(stack.queued()) == 20 and stack.records() == 20
    # 10 refused by the open-jobs cap (audited each), then 30 by the rate limit (the first of the run audited).
    assert [entry.rule.split(";")[0] for entry in stack.audit()] == ["limits.queued_per_user 20"] * 10 + [
        "limits.commands_per_minute 30"]
