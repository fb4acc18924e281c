"""Redis memory per job and per audit entry, measured with MEMORY USAGE against a real redis-server.

    PYTHONPATH=$PWD .venv/bin/python -m tests.benchmarks.redis_memory [--jobs 200]

Starts its own redis-server (no persistence, a free loopback port), queues ``--jobs`` pushes through
the real command path (``Service.handle``: job record, origin, rq job, queue entry, events, audit,
limits' sets, idempotency key), adds what the relay writes for each (the Slack message key), then ends
each job as a worker would (``started``, two ``progress``, ``succeeded``: record updates, events and the
audit entry) and counts it in the metrics.  Prints every key a job creates with its MEMORY USAGE
(SAMPLES 0: every element counted), and what the shared streams, sets and lists grow by per job and per
audit entry (the difference of their MEMORY USAGE divided by the count).  Not rq's own result keys:
no rq worker runs the jobs here.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict

import redis

from bot.core.assembly import build_core
from bot.core.metrics import Metrics
from bot.core.replies import Request
from tests.support.services import RedisServer
from workers.events import EventWriter
from workers.kernel.config import parse_config
from workers.kernel.keys import AUDIT_STREAM, EVENTS_STREAM, slack_message_key

CONFIG = {
    "registries": {"main": {"server": "dockerhub.example.com:5100", "services_hostname": "namespace.example.com",
                            "username": "user001@namespace.example.com", "password_env": "REGISTRY_PASSWORD"}},
    "hosts": ["build-1"],
    "access": {"roles": {"deployer": {"actions": ["push"], "images": ["centos7-*"]}},
               "grants": [{"role": "deployer", "users": ["*"]}]},
    "limits": {"commands_per_minute": "off", "queued_per_user": 100_000, "queued_per_host": 100_000},
}
PER_JOB = re.compile(r"[0-9a-f]{12}")


def usage(connection: redis.Redis, key: str) -> int:
    return int(connection.memory_usage(key, samples=0) or 0)


def shape(key: str) -> str:
    """The key with its job id, user or reference replaced, so one job's keys group by kind."""
    if key.startswith("regops:request:"):
        return "regops:request:<trigger_id>"
    key = PER_JOB.sub("<job>", key)
    key = re.sub(r"centos7-app:\d+", "<image:tag>", key)
    return re.sub(r":U0USER\d+", ":<user>", key)


def snapshot(connection: redis.Redis) -> dict[str, int]:
    return {key.decode(): usage(connection, key.decode()) for key in connection.scan_iter(count=10_000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="pushes to queue and end (default 200)")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        raw = server.client()
        text = server.client(decode_responses=True)
        config = parse_config(CONFIG)
        core = build_core(config, text, raw, metrics=Metrics(text))
        before = snapshot(raw)
        # Each job by its own user (a user's limits set per job) and its own image tag (refjob key per job).
        ids = []
        for n in range(args.jobs):
            reply = core.service.handle(Request(user_id=f"U0USER{n}", text=f"push centos7-app {n}", channel_id="C0OPS",
                                                response_url=f"https://hooks.slack.com/commands/T0/{n}/x" + "y" * 24,
                                                idempotency_key=f"{n}.1234567890123.{'a' * 32}"))
            assert reply.job is not None, reply
            ids.append(reply.job.job_id)
            raw.hset(slack_message_key(reply.job.job_id), mapping={"channel": "C0OPS", "ts": "1733000000.123456"})
        queued = snapshot(raw)
        audit_queued = raw.xlen(AUDIT_STREAM)
        events = EventWriter(raw)
        for job_id in ids:
            events.started(job_id, worker="regops-worker-build-1.1234")
            events.progress(job_id, 40, message="pushing layers")
            events.progress(job_id, 80, message="pushing layers")
            events.succeeded(job_id, digest="sha256:" + "0" * 64)
            Metrics(text).job_ended(job_id)
        ended = snapshot(raw)
        report(args.jobs, before, queued, ended, audit_queued, raw.xlen(AUDIT_STREAM), raw.xlen(EVENTS_STREAM))
    finally:
        server.stop()


def report(jobs: int, before: dict[str, int], queued: dict[str, int], ended: dict[str, int], audit_queued: int,
           audit_all: int, events: int) -> None:
    def per_kind(now: dict[str, int], then: dict[str, int]) -> dict[str, tuple[int, int]]:
        kinds: dict[str, list[int]] = defaultdict(list)
        for key, size in now.items():
            kinds[shape(key)].append(size - then.get(key, 0))
        return {kind: (len(sizes), sum(sizes)) for kind, sizes in sorted(kinds.items())}

    print(f"MEMORY USAGE key SAMPLES 0, {jobs} pushes")
    for title, now, then in (("queued (what a flood leaves: no worker)", queued, before),
                             ("ended (started, 2 progress, succeeded, counted), growth since queued", ended, queued)):
        print(f"\n{title}:")
        total = 0
        for kind, (count, grown) in per_kind(now, then).items():
            if grown:
                print(f"  {kind:48s} {count:6d} key(s)  {grown / jobs:8.0f} B per job")
                total += grown
        print(f"  {'total':48s} {'':6s}         {total / jobs:8.0f} B per job")
    audit = ended[AUDIT_STREAM]
    print(f"\naudit stream: {audit_all} entries ({audit_queued} 'queued' + {audit_all - audit_queued} 'succeeded'), "
          f"{audit} B: {audit / audit_all:.0f} B per entry")
    print(f"events stream: {events} entries, {ended[EVENTS_STREAM]} B: {ended[EVENTS_STREAM] / events:.0f} B per entry")


if __name__ == "__main__":
    main()
