"""The console shell on real Redis: every event of its jobs, retries with their note, nothing out of order."""

from __future__ import annotations

import io
import threading

import redis

from bot.console.shell import Shell
from bot.core.assembly import build_core
from tests.bot.test_service import CONFIG
from tests.support.core import bytes_redis
from tests.support.waiting import wait_until
from workers.events import EventWriter
from workers.kernel.config import parse_config
from workers.kernel.jobs import FailureReason
from workers.kernel.keys import RECENT_JOBS_KEY


def test_the_shell_shows_every_event_of_its_job_with_the_worker_notes(text_redis: redis.Redis) -> None:
    """Defects: a retry showed as `running: push — ?%` without its note; `[job X] queued` came only sometimes."""
    core = build_core(parse_config(CONFIG), text_redis, bytes_redis(text_redis))
    out = io.StringIO()
    shell = Shell(core.service, text_redis, user="U0DEV1", channel="C0OPS", out=out, job_wait=lambda _a: 30.0)
    runner = threading.Thread(target=shell.run, args=(["push centos7-a latest"],))
    runner.start()
    wait_until(lambda: text_redis.zcard(RECENT_JOBS_KEY) == 1, 10, "the job to be queued")
    job_id = text_redis.zrange(RECENT_JOBS_KEY, 0, 0)[0]
    events = EventWriter(bytes_redis(text_redis))

    def shown(count: int) -> None:  # a worker's events come seconds apart; the shell shows each as it comes
        wait_until(lambda: out.getvalue().count(f"[job {job_id}]") >= count, 10, f"{count} lines of the job")

    shown(1)
    events.started(job_id, worker="w1")
    shown(2)
    events.progress(job_id, 40)
    shown(3)
    events.progress(job_id, message="retrying in 3 s (attempt 2 of 4): registry unreachable")
    shown(4)
    events.failed(job_id, FailureReason.REGISTRY_UNREACHABLE, "registry unreachable")
    runner.join(timeout=15)
    assert not runner.is_alive()
    lines = [line for line in out.getvalue().splitlines() if line.startswith(f"[job {job_id}]")]
    assert lines[0] == f"[job {job_id}] queued: push of dockerhub.example.com:5100/com.example.namespace/centos7-a:latest"
    assert lines[1] == f"[job {job_id}] started on host build-1"
    assert lines[2].endswith("— 40%")
    assert "retrying in 3 s (attempt 2 of 4): registry unreachable" in lines[3] and "?" not in lines[3]
    assert lines[4].startswith(f"[job {job_id}] failed: push of ") and len(lines) == 5
