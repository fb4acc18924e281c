"""A job queued before a freeze began is refused by the worker when it starts: nothing is written."""

from __future__ import annotations

import dataclasses
import time

import redis

from tests.support.services import DockerEngine, Registry
from tests.workers.conftest import (
    NAMESPACE,
    failed_run,
    local_image,
    make_spec,
    queued,
    record_of,
    registry_ref,
    unique_name,
)
from workers import tasks
from workers.guard_checks import target_of
from workers.kernel.freezes import end_freeze, start_freeze
from workers.kernel.guards import FreezeWindow, Guards, Scope


def test_the_target_is_read_as_the_config_globs_read_it() -> None:
    spec = make_spec("push", "main", "r:5000", reference=f"r:5000/{NAMESPACE}/centos7-app:v1")
    assert target_of(spec, {"main": NAMESPACE}) == ("main", "centos7-app", "v1")
    assert target_of(spec, {}) == ("main", f"{NAMESPACE}/centos7-app", "v1")
    by_digest = make_spec("delete", "main", "r:5000", reference=f"r:5000/{NAMESPACE}/app@sha256:" + "a" * 64)
    assert target_of(by_digest, {"main": NAMESPACE}) == ("main", "app", "")
    assert target_of(make_spec("pull", "main", "r:5000", reference=spec.reference), {"main": NAMESPACE}) is None


def test_a_push_queued_before_a_freeze_fails_at_its_start_and_pushes_nothing(
        context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry,
        redis_client: redis.Redis) -> None:
    tasks.install(dataclasses.replace(context, namespaces={"main": NAMESPACE}))
    name = unique_name("centos7")
    spec = make_spec("push", "main", registry.server, reference=registry_ref(registry.server, name),
                     source=local_image(docker_engine, layers=1))
    payload = queued(redis_client, spec)
    freeze = start_freeze(redis_client, Scope(images=("centos7-*",)), time.time() - 1, time.time() + 600,
                          "release day", "U0ADMIN")
    result = failed_run(lambda: tasks.push(payload))
    assert result["reason"] == "frozen"
    record = record_of(redis_client, spec.job_id)
    assert record.state == "failed" and record.reason == "frozen"
    assert record.message is not None and "freeze F1" in record.message and "release day" in record.message
    assert registry.manifest_digest(f"{NAMESPACE}/{name}", "1.0") is None  # nothing reached the registry
    # The freeze ended early: the same push runs.
    end_freeze(redis_client, freeze.id, "U0ADMIN", time.time())
    again = make_spec("push", "main", registry.server, reference=spec.reference, source=spec.source)
    assert tasks.push(queued(redis_client, again))["ok"] is True


def test_an_open_window_of_the_config_refuses_and_reads_are_never_frozen(
        context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry,
        redis_client: redis.Redis) -> None:
    always = FreezeWindow(name="always", cron="* * * * *", duration=120, reason="testing")
    tasks.install(dataclasses.replace(context, guards=Guards(freeze_windows=(always,)),
                                      namespaces={"main": NAMESPACE}))
    name = unique_name("app")
    push = make_spec("push", "main", registry.server, reference=registry_ref(registry.server, name),
                     source=local_image(docker_engine, layers=1))
    result = failed_run(lambda: tasks.push(queued(redis_client, push)))
    assert result["reason"] == "frozen" and "window always" in result["message"]
    pull = make_spec("pull", "main", registry.server, reference=registry_ref(registry.server, name))
    assert failed_run(lambda: tasks.pull(queued(redis_client, pull)))["reason"] != "frozen"  # not found, not frozen
