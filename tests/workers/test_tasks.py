"""The rq task functions, called directly with a real Redis, dockerd and registry; events checked in Redis."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import docker
import pytest
import redis
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from tests.support.redis_scan import all_redis_values
from tests.support.services import DockerEngine, Registry
from tests.workers.conftest import (
    NAMESPACE,
    WRONG_PASSWORD,
    WorkerSetup,
    events_of,
    failed_run,
    local_image,
    make_spec,
    queued,
    record_job,
    record_of,
    registry_config,
    registry_ref,
    unique_name,
)
from workers import tasks
from workers.credentials import CredentialStore
from workers.kernel.actions import TASKS
from workers.kernel.expectations import Expectation
from workers.kernel.history import read_history
from workers.kernel.keys import EXPECTATION_TTL_SECONDS, expectation_key, queue_name
from workers.worker import SafeSimpleWorker, make_worker


def test_push_succeeds_with_digest_in_record_and_events(
    context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry, redis_client: redis.Redis
) -> None:
    name = unique_name()
    reference = registry_ref(registry.server, name)
    spec = make_spec(
        "push", "main", registry.server, reference=reference, source=local_image(docker_engine, layers=3)
    )

    result = tasks.push(queued(redis_client, spec))

    digest = registry.manifest_digest(f"{NAMESPACE}/{name}", "1.0")
    assert digest is not None
    assert result == {
        "job_id": spec.job_id,
        "ok": True,
        "message": f"pushed {spec.reference}",
        "digest": digest,
    }
    events = events_of(redis_client, spec.job_id)
    assert events[0].type == "started" and events[-1].type == "succeeded"
    assert {e.type for e in events[1:-1]} <= {"progress"}
    progress = [e.progress for e in events if e.type == "progress"]
    percents = [p for p in progress if p is not None]
    assert percents == progress and percents == sorted(percents) and all(p < 100 for p in percents)
    assert events[-1].digest == digest
    record = record_of(redis_client, spec.job_id)
    assert (record.state, record.digest, record.progress, record.requester) == (
        "succeeded",
        digest,
        100,
        "U123TEST",
    )
    assert record.started_at is not None and record.finished_at is not None
    # The tag's history has the push: who, how, the digest, the job (and no earlier digest).
    (change,) = read_history(redis_client, reference)
    assert (change.digest, change.previous, change.who, change.how, change.job_id) == (
        digest, None, "U123TEST", "push", spec.job_id)
    # The registry's event of this push will find the job expected (its Slack user, for a while).
    key = expectation_key("main", f"{NAMESPACE}/{name}", "1.0")
    assert Expectation.from_json(redis_client.get(key)) == Expectation(spec.job_id, "U123TEST", "push")
    assert 0 < redis_client.ttl(key) <= EXPECTATION_TTL_SECONDS
    # The same digest pushed again is no change of the tag.
    again = make_spec("push", "main", registry.server, reference=reference, source=spec.source)
    tasks.push(queued(redis_client, again))
    assert len(read_history(redis_client, reference)) == 1


def test_pull_task(
    context: tasks.TaskContext,
    api: docker.APIClient,
    docker_engine: DockerEngine,
    registry: Registry,
    redis_client: redis.Redis,
) -> None:
    reference = registry_ref(registry.server, unique_name())
    push_spec = make_spec(
        "push", "main", registry.server, reference=reference, source=local_image(docker_engine)
    )
    pushed = tasks.push(queued(redis_client, push_spec))
    api.remove_image(reference, force=True)

    spec = make_spec("pull", "main", registry.server, reference=reference)
    result = tasks.pull(queued(redis_client, spec))

    assert result["ok"] is True and result["digest"] == pushed["digest"]
    assert api.inspect_image(reference)["Id"].startswith("sha256:")
    record = record_of(redis_client, spec.job_id)
    assert (record.state, record.digest) == ("succeeded", pushed["digest"])


def test_tag_task(
    context: tasks.TaskContext,
    api: docker.APIClient,
    docker_engine: DockerEngine,
    registry: Registry,
    redis_client: redis.Redis,
) -> None:
    source = local_image(docker_engine)
    reference = registry_ref(registry.server, unique_name())
    spec = make_spec("tag", "main", registry.server, reference=reference, source=source)
    result = tasks.tag(queued(redis_client, spec))
    assert result["ok"] is True
    assert reference in api.inspect_image(source)["RepoTags"]
    assert record_of(redis_client, spec.job_id).message == f"tagged {source} as {reference}"


def test_login_task(context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis) -> None:
    spec = make_spec("login", "main", registry.server)
    assert tasks.login(queued(redis_client, spec))["ok"] is True
    record = record_of(redis_client, spec.job_id)
    assert record.state == "succeeded"
    assert record.message == f"logged in to {registry.server} as {registry.username}"


def test_login_task_with_a_wrong_password(
    context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis
) -> None:
    spec = make_spec("login", "wrong", registry.server)
    result = failed_run(lambda: tasks.login(queued(redis_client, spec)))
    assert (result["ok"], result["reason"]) == (False, "auth_failed")
    [started, failed] = events_of(redis_client, spec.job_id)
    assert (started.type, failed.type, failed.reason) == ("started", "failed", "auth_failed")
    assert record_of(redis_client, spec.job_id).state == "failed"


def test_push_of_a_missing_local_image(
    context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis
) -> None:
    reference = registry_ref(registry.server, unique_name())
    spec = make_spec("push", "main", registry.server, reference=reference, source="absent-image:1.0")
    result = failed_run(lambda: tasks.push(queued(redis_client, spec)))
    assert result["reason"] == "image_not_found"
    record = record_of(redis_client, spec.job_id)
    assert (record.state, record.reason, record.message) == (
        "failed",
        "image_not_found",
        "local image absent-image:1.0 not found",
    )


def test_push_to_a_stopped_registry(
    context: tasks.TaskContext, docker_engine: DockerEngine, setup: WorkerSetup, redis_client: redis.Redis
) -> None:
    reference = registry_ref(setup.dead_server, unique_name())
    spec = make_spec(
        "push", "dead", setup.dead_server, reference=reference, source=local_image(docker_engine)
    )
    result = failed_run(lambda: tasks.push(queued(redis_client, spec)))
    assert (result["reason"], result["retryable"]) == ("registry_unreachable", True)
    assert record_of(redis_client, spec.job_id).reason == "registry_unreachable"


def test_unknown_registry(context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis) -> None:
    spec = make_spec("login", "staging", "staging.example.com:5000")
    failed_run(lambda: tasks.login(queued(redis_client, spec)))
    record = record_of(redis_client, spec.job_id)
    assert (record.state, record.reason) == ("failed", "internal")
    assert record.message == "registry 'staging' is not configured on this worker"


def test_bot_and_worker_disagreeing_on_the_server(
    context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis
) -> None:
    spec = make_spec("login", "main", "other.example.com:5000")
    failed_run(lambda: tasks.login(queued(redis_client, spec)))
    assert "other.example.com:5000" in (record_of(redis_client, spec.job_id).message or "")


def test_invalid_payload_fails_the_job_without_starting_it(
    context: tasks.TaskContext, redis_client: redis.Redis
) -> None:
    result = failed_run(lambda: tasks.push({"job_id": "bad1", "action": "push", "version": 99}))
    assert (result["ok"], result["reason"]) == (False, "internal")
    assert [e.type for e in events_of(redis_client, "bad1")] == ["failed"]


def test_spec_for_another_action_is_refused(
    context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis
) -> None:
    spec = make_spec("login", "main", registry.server)
    assert failed_run(lambda: tasks.push(queued(redis_client, spec)))["ok"] is False
    assert record_of(redis_client, spec.job_id).message == "invalid job payload"


def test_unexpected_errors_get_a_reference_id(
    redis_client: redis.Redis, setup: WorkerSetup, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_engine() -> docker.APIClient:
        raise ZeroDivisionError("boom")

    tasks.install(tasks.TaskContext(redis_client, broken_engine, setup.credentials()))
    try:
        spec = make_spec("login", "main", setup.registry.server)
        with caplog.at_level(logging.ERROR):
            failed_run(lambda: tasks.login(queued(redis_client, spec)))
    finally:
        tasks.uninstall()
    message = record_of(redis_client, spec.job_id).message or ""
    assert message.startswith("internal error on the worker (ref ")
    assert "boom" not in message
    ref = message.removeprefix("internal error on the worker (ref ").rstrip(")")
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)


def test_tasks_need_an_installed_context() -> None:
    tasks.uninstall()
    with pytest.raises(RuntimeError, match="install"):
        tasks.login({})


def test_no_password_in_redis_or_logs(
    context: tasks.TaskContext,
    docker_engine: DockerEngine,
    registry: Registry,
    setup: WorkerSetup,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reference = registry_ref(registry.server, unique_name())
    source = local_image(docker_engine)
    with caplog.at_level(logging.DEBUG):
        failures = [
            failed_run(lambda: tasks.login(queued(redis_client, make_spec("login", "wrong", registry.server)))),
            failed_run(lambda: tasks.push(queued(
                redis_client, make_spec("push", "wrong", registry.server, reference=reference, source=source)))),
            failed_run(lambda: tasks.pull(queued(
                redis_client, make_spec("pull", "wrong", registry.server, reference=reference)))),
        ]
        successes = [
            tasks.push(
                queued(
                    redis_client,
                    make_spec("push", "main", registry.server, reference=reference, source=source),
                )
            ),
            tasks.login(queued(redis_client, make_spec("login", "main", registry.server))),
        ]

    # The passwords really were used: the wrong one was rejected, the right one accepted.
    assert [f["reason"] for f in failures] == ["auth_failed"] * 3
    assert all(s["ok"] for s in successes)
    blob = all_redis_values(redis_client)
    messages = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (WRONG_PASSWORD, registry.password):
        assert secret.encode() not in blob
        assert secret not in messages
        assert secret not in caplog.text  # formatted lines, tracebacks included


@pytest.fixture
def silent_registry() -> Iterator[str]:
    """host:port that accepts TCP connections and never answers: requests hang."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_timeout_is_reported_then_reraised(
    context: tasks.TaskContext,
    redis_client: redis.Redis,
    registry: Registry,
    silent_registry: str,
    setup: WorkerSetup,
) -> None:
    store = CredentialStore(
        {"silent": registry_config("silent", silent_registry, "u", password_env="PW")}, {"PW": "pw"}
    )
    tasks.install(tasks.TaskContext(redis_client, context.docker_api, store))

    spec = make_spec("login", "silent", silent_registry)
    record_job(redis_client, spec)
    queue = Queue(queue_name("build-1"), connection=redis_client, serializer=JSONSerializer)
    job = queue.enqueue_call(
        func=TASKS["login"], kwargs={"spec": spec.to_dict()}, job_id=spec.job_id, timeout=2
    )
    make_worker("build-1", redis_client, worker_class=SafeSimpleWorker).work(burst=True)

    record = record_of(redis_client, spec.job_id)
    assert (record.state, record.reason) == ("failed", "timed_out")
    assert record.message == f"the login of {silent_registry} timed out"
    assert job.get_status(refresh=True) == JobStatus.FAILED
