"""Worker faults produced for real: SIGTERM and SIGKILL of a running `python -m workers`, dockerd stopped mid-push.

Each test runs real worker processes (own process group, as a systemd unit) against
real Redis, a registry and a private dockerd of this module's own (it is stopped and
restarted here), and asserts the end state in the job record, rq's queue and the
registry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests.support.services import DockerEngine, RedisServer, Registry, build_image
from tests.support.stack import descendants
from tests.support.waiting import wait_until
from tests.workers.conftest import NAMESPACE, events_of, make_spec, record_job, record_of, unique_name
from workers.kernel.actions import TASKS
from workers.kernel.jobs import JobSpec
from workers.kernel.keys import heartbeat_key, queue_name, reference_lock_key

REPO_ROOT = Path(__file__).resolve().parents[2]
DB = 9
LAYERS, LAYER_SIZE = 4, 16 * 1024 * 1024


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    """A dockerd of this module's own: the tests stop and restart it."""
    own = DockerEngine()
    try:
        own.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield own
    own.stop()


@pytest.fixture
def db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


class WorkerUnit:
    """`python -m workers` as a systemd unit runs it: own process group; signals reach every process."""

    def __init__(self, tmp: Path, redis_server: RedisServer, engine: DockerEngine, registry: Registry,
                 host: str, *extra: str, retries: str = "{attempts: 3, backoff: 1s, max_backoff: 2s}") -> None:
        self.host = host
        config = tmp / f"regops-{unique_name('w')}.yaml"
        config.write_text(textwrap.dedent(f"""\
            registries:
              main:
                server: "{registry.server}"
                services_hostname: namespace.example.com
                username: "{registry.username}"
                password_env: REGISTRY_PASSWORD
            hosts: [{host}]
            retries: {retries}
            """))
        self.log_path = tmp / f"worker-{unique_name('log')}.log"
        env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/{DB}",
                   DOCKER_HOST=engine.host, REGISTRY_PASSWORD=registry.password)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers", "--host", host, "--config", str(config), *extra],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def signal_all(self, sig: signal.Signals) -> None:
        """What systemd does (KillMode=control-group): the signal reaches every process of the unit."""
        pids = [self.process.pid, *descendants(self.process.pid)]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker did not exit within {timeout} s\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.signal_all(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def units() -> Iterator[list[WorkerUnit]]:
    started: list[WorkerUnit] = []
    yield started
    for unit in started:
        unit.kill()


def wait_for(check: Callable[[], Any], timeout: float, what: str, unit: WorkerUnit | None = None) -> Any:
    return wait_until(check, timeout, what, (lambda: f"\n--- worker log ---\n{unit.log()}") if unit else (lambda: ""),
                      interval=0.02)


def big_image(engine: DockerEngine) -> str:
    name = unique_name("big")
    build_image(engine.host, name, "1.0", layers=LAYERS, layer_size=LAYER_SIZE, seed=name)
    return f"{name}:1.0"


def enqueue_push(db: redis.Redis, registry: Registry, host: str, source: str) -> tuple[JobSpec, Job]:
    name = unique_name()
    spec = make_spec("push", "main", registry.server, reference=f"{registry.server}/{NAMESPACE}/{name}:1.0",
                     source=source)
    record_job(db, spec, host)
    queue = Queue(queue_name(host), connection=db, serializer=JSONSerializer)
    job = queue.enqueue_call(func=TASKS["push"], kwargs={"spec": spec.to_dict()}, job_id=spec.job_id,
                             timeout=300)
    return spec, job


def repository_of(spec: JobSpec) -> str:
    assert spec.reference is not None
    return spec.reference.split("/", 1)[1].rsplit(":", 1)[0]


def pushing(db: redis.Redis, spec: JobSpec) -> bool:
    """The push is under way: some progress is reported and the job has not ended."""
    record = record_of(db, spec.job_id)
    return record.state == "running" and (record.progress or 0) > 0


def start_push(tmp_path: Path, redis_server: RedisServer, engine: DockerEngine, registry: Registry,
               db: redis.Redis, units: list[WorkerUnit], *extra: str,
               **options: str) -> tuple[JobSpec, Job, WorkerUnit]:
    """Queue a push of a big image, start a worker unit for its host, and wait until it is pushing."""
    host = unique_name("host")
    spec, job = enqueue_push(db, registry, host, big_image(engine))
    unit = WorkerUnit(tmp_path, redis_server, engine, registry, host, *extra, **options)
    units.append(unit)
    wait_for(lambda: pushing(db, spec), 60, "the push to start")
    return spec, job, unit


def test_sigterm_to_the_unit_lets_the_running_push_finish(
    tmp_path: Path, redis_server: RedisServer, engine: DockerEngine, registry: Registry, db: redis.Redis,
    units: list[WorkerUnit],
) -> None:
    spec, job, unit = start_push(tmp_path, redis_server, engine, registry, db, units)

    unit.signal_all(signal.SIGTERM)
    assert record_of(db, spec.job_id).state == "running", "the signal must reach a running push"

    assert unit.wait(120) == 0, unit.log()
    record = record_of(db, spec.job_id)
    assert (record.state, record.reason) == ("succeeded", None), unit.log()
    assert registry.manifest_digest(repository_of(spec), "1.0") == record.digest
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert not db.exists(heartbeat_key(spec.job_id))
    assert not db.exists(reference_lock_key(spec.reference or ""))


def test_a_job_still_running_after_the_grace_period_goes_back_to_the_queue(
    tmp_path: Path, redis_server: RedisServer, engine: DockerEngine, registry: Registry, db: redis.Redis,
    units: list[WorkerUnit],
) -> None:
    host = unique_name("host")
    spec, job = enqueue_push(db, registry, host, big_image(engine))
    assert spec.reference is not None
    # Another job holds the reference, so this one is still running (waiting) when the grace ends.
    db.set(reference_lock_key(spec.reference), "other-job", ex=120)
    unit = WorkerUnit(tmp_path, redis_server, engine, registry, host, "--grace", "2")
    units.append(unit)
    wait_for(lambda: record_of(db, spec.job_id).message, 30, "the job to wait for the reference")

    unit.signal_all(signal.SIGTERM)

    assert unit.wait(30) == 0, unit.log()
    record = record_of(db, spec.job_id)
    assert record.state == "queued"
    assert record.message and record.message.startswith("handed back to the queue: worker "), record.message
    assert [e.type for e in events_of(db, spec.job_id)][-1] == "queued"
    queue = Queue(queue_name(host), connection=db, serializer=JSONSerializer)
    assert queue.job_ids == [spec.job_id]
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert not db.exists(heartbeat_key(spec.job_id))
    assert registry.manifest_digest(repository_of(spec), "1.0") is None

    # Another worker takes the job once the reference is free, and finishes it.
    db.delete(reference_lock_key(spec.reference))
    again = WorkerUnit(tmp_path, redis_server, engine, registry, host, "--burst")
    units.append(again)
    assert again.wait(120) == 0, again.log()
    record = record_of(db, spec.job_id)
    assert record.state == "succeeded", again.log()
    assert registry.manifest_digest(repository_of(spec), "1.0") == record.digest


def test_sigkill_leaves_the_heartbeat_to_expire_and_a_new_worker_starts_at_once(
    tmp_path: Path, redis_server: RedisServer, engine: DockerEngine, registry: Registry, db: redis.Redis,
    units: list[WorkerUnit],
) -> None:
    host = unique_name("host")
    spec, _ = enqueue_push(db, registry, host, big_image(engine))
    small = unique_name("small")
    build_image(engine.host, small, "1.0", seed=small)
    unit = WorkerUnit(tmp_path, redis_server, engine, registry, host)
    units.append(unit)
    wait_for(lambda: pushing(db, spec), 60, "the push to start")
    assert db.get(heartbeat_key(spec.job_id)) is not None

    unit.signal_all(signal.SIGKILL)
    killed_at = time.monotonic()
    unit.process.wait(timeout=10)

    # A new worker on the same host starts right away and takes new work at once.
    replacement = WorkerUnit(tmp_path, redis_server, engine, registry, host)
    units.append(replacement)
    second, _ = enqueue_push(db, registry, host, f"{small}:1.0")
    wait_for(lambda: record_of(db, second.job_id).state == "succeeded", 30, "the new worker to run a job")
    assert time.monotonic() - killed_at < 20, "the new job must not wait for the dead worker's heartbeat"
    assert registry.manifest_digest(repository_of(second), "1.0") == record_of(db, second.job_id).digest

    # The dead job's heartbeat (and its reference lock) expire: that is what the bot's relay detects.
    wait_for(lambda: not db.exists(heartbeat_key(spec.job_id)), 25, "the dead job's heartbeat to expire")
    assert time.monotonic() - killed_at <= 25
    assert not db.exists(reference_lock_key(spec.reference or ""))
    assert record_of(db, spec.job_id).state == "running"  # until the relay reports it
    assert registry.manifest_digest(repository_of(spec), "1.0") is None
    assert replacement.process.poll() is None


def test_dockerd_stopped_mid_push_fails_the_job_as_engine_unreachable(
    tmp_path: Path, redis_server: RedisServer, engine: DockerEngine, registry: Registry, db: redis.Redis,
    units: list[WorkerUnit],
) -> None:
    spec, _, unit = start_push(tmp_path, redis_server, engine, registry, db, units)

    # A crash: a graceful stop would let the running push finish before dockerd exits.
    engine.stop_daemon(crash=True)
    try:
        record = wait_for(lambda: (r := record_of(db, spec.job_id)).state == "failed" and r, 60,
                          "the job to fail", unit)
    finally:
        engine.start_daemon()

    assert record.reason == "engine_unreachable", unit.log()
    assert record.message == "Docker engine unreachable (gave up after 3 attempts)"
    notes = [e.message for e in events_of(db, spec.job_id) if e.type == "progress" and e.message]
    assert "retrying in 1 s (attempt 2 of 3): Docker engine unreachable" in notes
    assert registry.manifest_digest(repository_of(spec), "1.0") is None
    assert not db.exists(heartbeat_key(spec.job_id))


def test_dockerd_restarted_within_the_retries_lets_the_push_succeed(
    tmp_path: Path, redis_server: RedisServer, engine: DockerEngine, registry: Registry, db: redis.Redis,
    units: list[WorkerUnit],
) -> None:
    spec, _, unit = start_push(tmp_path, redis_server, engine, registry, db, units,
                               retries="{attempts: 8, backoff: 2s, max_backoff: 4s}")

    engine.stop_daemon(crash=True)
    time.sleep(1)
    engine.start_daemon()

    record = wait_for(lambda: (r := record_of(db, spec.job_id)).state in ("succeeded", "failed") and r, 120,
                      "the job to end")
    assert record.state == "succeeded", f"{record}\n{unit.log()}"
    notes = [e.message or "" for e in events_of(db, spec.job_id) if e.type == "progress"]
    assert any(note.startswith("retrying in 2 s (attempt 2 of 8): ") for note in notes), notes
    assert registry.manifest_digest(repository_of(spec), "1.0") == record.digest


def test_a_work_horse_killed_alone_fails_its_job_at_once_and_the_worker_goes_on(
    tmp_path: Path, redis_server: RedisServer, engine: DockerEngine, registry: Registry, db: redis.Redis,
    units: list[WorkerUnit],
) -> None:
    spec, job, unit = start_push(tmp_path, redis_server, engine, registry, db, units)
    assert spec.reference is not None

    # The OOM killer picks the process doing the work: the horse, not the worker.
    for pid in descendants(unit.process.pid):
        os.kill(pid, signal.SIGKILL)

    record = wait_for(lambda: (r := record_of(db, spec.job_id)).state == "failed" and r, 15,
                      "the job to be reported failed", unit)
    assert (record.reason, record.message) == ("internal", "the worker running it stopped")
    assert not db.exists(heartbeat_key(spec.job_id))
    assert not db.exists(reference_lock_key(spec.reference))
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert registry.manifest_digest(repository_of(spec), "1.0") is None

    # The same worker goes on with the next job.
    retry, _ = enqueue_push(db, registry, unit.host, big_image(engine))
    retry_record = wait_for(lambda: (r := record_of(db, retry.job_id)).state == "succeeded" and r, 60,
                            "the next job to succeed", unit)
    assert registry.manifest_digest(repository_of(retry), "1.0") == retry_record.digest
    assert unit.process.poll() is None
