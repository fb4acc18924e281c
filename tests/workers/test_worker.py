"""The safe rq worker: runs regops tasks enqueued the way the bot enqueues them, refuses anything else."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest
import redis
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from tests.support.redis_scan import all_redis_values
from tests.support.services import DockerEngine, RedisServer, Registry
from tests.workers.conftest import (
    NAMESPACE,
    WRONG_PASSWORD,
    WorkerSetup,
    events_of,
    local_image,
    make_spec,
    record_job,
    record_of,
    registry_ref,
    unique_name,
)
from workers import tasks
from workers.__main__ import main
from workers.kernel.actions import TASKS
from workers.kernel.keys import job_key, queue_name
from workers.worker import REFUSED_MESSAGE, SafeSimpleWorker, SafeWorker, make_worker

REPO_ROOT = Path(__file__).resolve().parents[2]


def json_queue(connection: redis.Redis, host: str) -> Queue:
    return Queue(queue_name(host), connection=connection, serializer=JSONSerializer)


def test_subprocess_worker_runs_a_push(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    docker_engine: DockerEngine,
    registry: Registry,
    setup: WorkerSetup,
) -> None:
    host = unique_name("host")
    name = unique_name()
    spec = make_spec(
        "push",
        "main",
        registry.server,
        reference=registry_ref(registry.server, name),
        source=local_image(docker_engine),
    )
    record_job(redis_client, spec, host)
    job = json_queue(redis_client, host).enqueue_call(
        func=TASKS["push"], kwargs={"spec": spec.to_dict()}, job_id=spec.job_id
    )

    env = dict(os.environ, **setup.environ)
    env.update(REDIS_URL=redis_server.url, DOCKER_HOST=docker_engine.host)
    done = subprocess.run(
        [sys.executable, "-m", "workers", "--host", host, "--config", str(setup.config), "--burst"],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    digest = registry.manifest_digest(f"{NAMESPACE}/{name}", "1.0")
    record = record_of(redis_client, spec.job_id)
    assert (record.state, record.digest) == ("succeeded", digest)
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert f"job {spec.job_id}: push {spec.reference} started" in output
    assert registry.password not in output
    assert registry.password.encode() not in all_redis_values(redis_client)


def test_an_expected_failure_is_a_failed_rq_job_with_its_reason_and_no_traceback(
    redis_client: redis.Redis, context: tasks.TaskContext, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """rq's registries (`rq info`, rq-dashboard) agree with regops: a job that failed is failed there too."""
    host = unique_name("host")
    queue = json_queue(redis_client, host)
    spec = make_spec("login", "wrong", registry.server)
    record_job(redis_client, spec, host)
    job = queue.enqueue_call(func=TASKS["login"], kwargs={"spec": spec.to_dict()}, job_id=spec.job_id)

    with caplog.at_level(logging.INFO):
        make_worker(host, redis_client, worker_class=SafeSimpleWorker).work(burst=True)

    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert job.id in queue.failed_job_registry.get_job_ids()
    result = job.latest_result()
    assert result is not None and "JobFailed: auth_failed: registry " in result.exc_string
    assert record_of(redis_client, spec.job_id).state == "failed"
    # The task logged the failure in one line; rq does not add a traceback at ERROR.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert registry.password not in result.exc_string and WRONG_PASSWORD not in result.exc_string


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


def test_foreign_functions_are_refused_without_running(
    redis_client: redis.Redis,
    context: tasks.TaskContext,
    api: docker.APIClient,
    docker_engine: DockerEngine,
    registry: Registry,
    marker: Path,
) -> None:
    host = unique_name("host")
    queue = json_queue(redis_client, host)
    known = queue.enqueue_call(func="os.system", args=[f"touch {marker}"], job_id="foreign-with-record")
    redis_client.hset(job_key(known.id), mapping={"job_id": known.id, "state": "queued"})
    unknown = queue.enqueue_call(func="os.system", args=[f"touch {marker}"], job_id="foreign-no-record")
    # A legitimate job behind them shows the worker went on with the queue.
    source = local_image(docker_engine)
    reference = registry_ref(registry.server, unique_name())
    spec = make_spec("tag", "main", registry.server, reference=reference, source=source)
    record_job(redis_client, spec, host)
    legit = queue.enqueue_call(func=TASKS["tag"], kwargs={"spec": spec.to_dict()}, job_id=spec.job_id)

    make_worker(host, redis_client, worker_class=SafeWorker).work(burst=True)

    assert not marker.exists()
    for job in (known, unknown):
        assert job.get_status(refresh=True) == JobStatus.FAILED
        assert job.id in queue.failed_job_registry.get_job_ids()
        result = job.latest_result()
        assert result is not None and result.exc_string == REFUSED_MESSAGE
    assert queue.intermediate_queue.get_job_ids() == []
    [event] = events_of(redis_client, known.id)
    assert (event.type, event.reason, event.message) == ("failed", "internal", REFUSED_MESSAGE)
    assert events_of(redis_client, unknown.id) == []
    assert not redis_client.exists(job_key(unknown.id))
    assert legit.get_status(refresh=True) == JobStatus.FINISHED
    assert reference in api.inspect_image(source)["RepoTags"]


def test_pickled_jobs_are_refused(
    redis_client: redis.Redis, context: tasks.TaskContext, marker: Path
) -> None:
    host = unique_name("host")
    pickled = Queue(queue_name(host), connection=redis_client)  # rq's default pickle serializer
    job = pickled.enqueue_call(func="os.system", args=[f"touch {marker}"])

    make_worker(host, redis_client, worker_class=SafeSimpleWorker).work(burst=True)

    assert not marker.exists()
    refused = Job.fetch(job.id, connection=redis_client)
    assert refused.get_status() == JobStatus.FAILED
    result = refused.latest_result()
    assert result is not None and result.exc_string == REFUSED_MESSAGE


def test_regops_task_with_a_callback_is_refused(
    redis_client: redis.Redis,
    context: tasks.TaskContext,
    api: docker.APIClient,
    docker_engine: DockerEngine,
    registry: Registry,
) -> None:
    host = unique_name("host")
    source = local_image(docker_engine)
    reference = registry_ref(registry.server, unique_name())
    spec = make_spec("tag", "main", registry.server, reference=reference, source=source)
    record_job(redis_client, spec, host)
    job = json_queue(redis_client, host).enqueue_call(
        func=TASKS["tag"],
        kwargs={"spec": spec.to_dict()},
        job_id=spec.job_id,
        on_success=Callback("os.system"),
    )

    make_worker(host, redis_client, worker_class=SafeSimpleWorker).work(burst=True)

    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert reference not in api.inspect_image(source)["RepoTags"]
    assert record_of(redis_client, spec.job_id).message == REFUSED_MESSAGE



def test_main_exits_2_on_a_bad_config(
    tmp_path: Path, restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "regops.yaml"
    bad.write_text("registries: {}\n")
    assert main(["--host", "build-1", "--config", str(bad), "--burst"]) == 2
    logged = capsys.readouterr().err
    assert f"cannot start: invalid configuration ({bad}): 2 problems: " in logged
    assert "registries: must be a mapping of registry names to settings" in logged
    assert "hosts: is required" in logged


def test_main_exits_2_without_a_config_file(
    tmp_path: Path, restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--host", "build-1", "--config", str(tmp_path / "nope.yaml"), "--burst"]) == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file" in capsys.readouterr().err


def test_main_exits_3_without_redis(
    setup: WorkerSetup, monkeypatch: pytest.MonkeyPatch, restored_logging: None
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    for name, value in setup.environ.items():
        monkeypatch.setenv(name, value)
    assert main(["--host", "build-1", "--config", str(setup.config), "--burst"]) == 3
