"""Job heartbeat, one job per reference, retries: the task functions on real Redis, dockerd and registries."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.services import DockerEngine, Registry
from tests.support.waiting import wait_until
from tests.workers.conftest import (
    NAMESPACE,
    WorkerSetup,
    events_of,
    failed_run,
    local_image,
    make_spec,
    queued,
    record_of,
    registry_config,
    registry_ref,
    unique_name,
)
from workers import tasks
from workers.__main__ import build_context
from workers.credentials import CredentialStore
from workers.events import EventWriter
from workers.kernel.config import Retries
from workers.kernel.errors import ConfigError
from workers.kernel.jobs import JobSpec
from workers.kernel.keys import HEARTBEAT_TTL_SECONDS, heartbeat_key, reference_lock_key
from workers.liveness import Heartbeat, ReferenceLock


def in_thread(function: Callable[[], dict[str, Any]]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(function()), daemon=True)
    thread.start()
    return thread, out


def test_started_sets_the_heartbeat_and_the_outcome_deletes_it(redis_client: redis.Redis) -> None:
    events = EventWriter(redis_client)
    events.started("j1", worker="w-1")
    assert redis_client.get(heartbeat_key("j1")) == b"w-1"
    assert 0 < redis_client.ttl(heartbeat_key("j1")) <= HEARTBEAT_TTL_SECONDS
    events.failed("j1", "internal", "boom")
    assert not redis_client.exists(heartbeat_key("j1"))


def test_the_heartbeat_thread_renews_key_and_lock_until_stopped(redis_client: redis.Redis) -> None:
    lock = ReferenceLock(redis_client, "r.example:5000/ns/a:1", "j2")
    assert lock.try_acquire() is None
    beat = Heartbeat(redis_client, "j2", "w-2", interval=0.1)
    beat.keep(lock)
    redis_client.expire(lock.key, 3)
    beat.start()
    wait_until(lambda: redis_client.ttl(heartbeat_key("j2")) > 3, 5, "a renewed heartbeat")
    wait_until(lambda: redis_client.ttl(lock.key) > 3, 5, "a renewed lock")
    beat.stop()
    redis_client.delete(heartbeat_key("j2"))
    time.sleep(0.3)
    assert not redis_client.exists(heartbeat_key("j2")), "a stopped heartbeat must not come back"
    lock.release()
    assert not redis_client.exists(lock.key)


def test_a_lock_is_released_only_by_its_holder(redis_client: redis.Redis) -> None:
    first = ReferenceLock(redis_client, "r.example:5000/ns/b:1", "j3")
    second = ReferenceLock(redis_client, "r.example:5000/ns/b:1", "j4")
    assert first.try_acquire() is None
    assert second.try_acquire() == "j3"
    second.release()  # not held: a no-op
    assert redis_client.get(first.key) == b"j3"
    # The same job (re-run after a hand-back) takes its own lock again.
    assert ReferenceLock(redis_client, first.reference, "j3").try_acquire() is None


def test_a_second_push_of_the_same_reference_waits_and_says_for_whom(
    context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry, redis_client: redis.Redis
) -> None:
    name = unique_name()
    reference = registry_ref(registry.server, name)
    spec = make_spec("push", "main", registry.server, reference=reference, source=local_image(docker_engine))
    # A job on another worker holds the reference.
    redis_client.set(reference_lock_key(reference), "abc123", ex=60)

    thread, result = in_thread(lambda: tasks.push(queued(redis_client, spec)))

    record = wait_until(
        lambda: (r := record_of(redis_client, spec.job_id)).message and r, 10, "the waiting note"
    )
    assert (record.state, record.message) == ("running", "waiting for job abc123 (same reference)")
    assert redis_client.get(heartbeat_key(spec.job_id)) is not None, "a waiting job is alive"
    time.sleep(1)
    assert thread.is_alive() and registry.manifest_digest(f"{NAMESPACE}/{name}", "1.0") is None

    redis_client.delete(reference_lock_key(reference))
    thread.join(60)

    assert result["ok"] is True
    assert registry.manifest_digest(f"{NAMESPACE}/{name}", "1.0") == result["digest"]
    notes = [e.message for e in events_of(redis_client, spec.job_id) if e.type == "progress" and e.message is not None]
    assert notes == ["waiting for job abc123 (same reference)", ""]
    assert record_of(redis_client, spec.job_id).state == "succeeded"
    assert not redis_client.exists(heartbeat_key(spec.job_id))
    assert not redis_client.exists(reference_lock_key(reference))


def test_two_pushes_of_one_reference_never_overlap(
    context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry, redis_client: redis.Redis
) -> None:
    name = unique_name()
    reference = registry_ref(registry.server, name)
    specs = [
        make_spec("push", "main", registry.server, reference=reference, source=local_image(docker_engine))
        for _ in range(2)
    ]

    def pusher(spec: JobSpec) -> Callable[[], dict[str, Any]]:
        return lambda: tasks.push(queued(redis_client, spec))

    runs = [in_thread(pusher(spec)) for spec in specs]
    for thread, _ in runs:
        thread.join(120)

    assert all(result["ok"] for _, result in runs)
    records = [record_of(redis_client, spec.job_id) for spec in specs]
    first, second = sorted(records, key=lambda r: r.finished_at or 0)
    waited = [e.message for e in events_of(redis_client, second.job_id) if e.message]
    assert f"waiting for job {first.job_id} (same reference)" in waited
    assert second.started_at is not None and first.finished_at is not None
    # The second did its work only after the first had finished with the reference.
    assert registry.manifest_digest(f"{NAMESPACE}/{name}", "1.0") == second.digest


def test_transient_failures_are_retried_visibly_then_given_up(
    context: tasks.TaskContext, docker_engine: DockerEngine, setup: WorkerSetup, redis_client: redis.Redis
) -> None:
    reference = registry_ref(setup.dead_server, unique_name())
    spec = make_spec("push", "dead", setup.dead_server, reference=reference, source=local_image(docker_engine))

    result = failed_run(lambda: tasks.push(queued(redis_client, spec)))

    assert (result["ok"], result["reason"]) == (False, "registry_unreachable")
    notes = [e.message for e in events_of(redis_client, spec.job_id) if e.type == "progress" and e.message]
    assert notes == [
        "retrying in 0.1 s (attempt 2 of 3): registry unreachable",
        "attempt 2 of 3",
        "retrying in 0.2 s (attempt 3 of 3): registry unreachable",
        "attempt 3 of 3",
    ]
    record = record_of(redis_client, spec.job_id)
    assert (record.state, record.reason) == ("failed", "registry_unreachable")
    assert record.message == f"registry {setup.dead_server} is unreachable (gave up after 3 attempts)"


def test_permanent_failures_fail_at_once(
    context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry, redis_client: redis.Redis
) -> None:
    reference = registry_ref(registry.server, unique_name())
    spec = make_spec("push", "wrong", registry.server, reference=reference, source=local_image(docker_engine))

    result = failed_run(lambda: tasks.push(queued(redis_client, spec)))

    assert result["reason"] == "auth_failed"
    assert [e.type for e in events_of(redis_client, spec.job_id)] == ["started", "failed"]
    assert not redis_client.exists(reference_lock_key(reference))


def test_a_registry_that_comes_back_within_the_retries_gets_the_push(
    context: tasks.TaskContext, docker_engine: DockerEngine, redis_client: redis.Redis
) -> None:
    late = Registry()
    late.start()
    server, port = late.server, late.port
    late.stop()  # down now; it comes back on the same port while the job retries
    comeback = Registry(username=late.username, password=late.password, port=port)
    store = CredentialStore(
        {"late": registry_config("late", server, late.username, password_env="PW")}, {"PW": late.password}
    )
    tasks.install(dataclasses.replace(context, credentials=store, retries=Retries(5, 1.0, 2.0)))
    name = unique_name()
    spec = make_spec(
        "push", "late", server, reference=registry_ref(server, name), source=local_image(docker_engine)
    )
    starter = threading.Timer(1.0, comeback.start)
    starter.start()
    try:
        result = tasks.push(queued(redis_client, spec))
        starter.join()
        assert result["ok"] is True, result
        assert comeback.manifest_digest(f"{NAMESPACE}/{name}", "1.0") == result["digest"]
        notes = [e.message or "" for e in events_of(redis_client, spec.job_id) if e.type == "progress"]
        assert any(note.startswith("retrying in 1 s (attempt 2 of 5): registry unreachable") for note in notes)
        assert record_of(redis_client, spec.job_id).state == "succeeded"
    finally:
        starter.cancel()
        starter.join()
        comeback.stop()


def test_retry_policy_backoff_doubles_up_to_its_cap() -> None:
    policy = Retries(attempts=6, backoff=2, max_backoff=10)
    assert [policy.delay(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]


def test_the_worker_reads_the_retries_section(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    base = "registries:\n  main: {server: r.example:5000, namespace: ns, username: u, password_env: PW}\nhosts: [b]\n"
    path.write_text(base)
    assert build_context(str(path), {}).retries == Retries()
    path.write_text(base + "retries: {attempts: 4, backoff: 1s, max_backoff: 1m}\n")
    assert build_context(str(path), {}).retries == Retries(4, 1, 60)
    path.write_text(base + "retries: {attempts: 0, backof: 1}\n")
    with pytest.raises(ConfigError) as info:
        build_context(str(path), {})
    assert "retries.backof: unknown key" in info.value.summary()
    assert "retries.attempts: must be at least 1 (1 means no retry)" in info.value.summary()
