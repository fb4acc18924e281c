"""Immutable tags and promotion paths, checked by the worker against the registry right before it writes.

Real Redis, dockerd and Distribution registry: images are written through the registry's API
(tests/support/registry_images.py) or built on the engine, the jobs run through the rq entry
points with the real reference lock.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.support.registry_images import ImageWriter, basic
from tests.support.services import DockerEngine, Registry
from tests.workers.conftest import (
    NAMESPACE,
    WorkerSetup,
    local_image,
    make_spec,
    queued,
    record_of,
    registry_ref,
    unique_name,
)
from workers import tasks
from workers.credentials import RegistryCredentials
from workers.errors import JobFailed
from workers.kernel.freezes import start_freeze
from workers.kernel.guards import Guards, ImmutableRule, PromotionPath, Scope
from workers.registry.client import RegistryClient, client_for

RELEASES = Guards(immutable=(ImmutableRule(Scope(tags=("v[0-9]*",))),))
PATH = Guards(promotion_paths=(PromotionPath(("dev", "staging", "prod")),))


@pytest.fixture
def writer(registry: Registry) -> Iterator[ImageWriter]:
    with ImageWriter(registry.base_url, basic(registry.username, registry.password)) as made:
        yield made


def _install(context: tasks.TaskContext, guards: Guards, **changes: Any) -> None:
    tasks.install(dataclasses.replace(context, guards=guards, namespaces={"main": NAMESPACE}, **changes))


def _repo(prefix: str = "app") -> tuple[str, str]:
    """(image name, repository path) of an image nobody else uses."""
    name = unique_name(prefix)
    return name, f"{NAMESPACE}/{name}"


def _promote(registry: Registry, redis_client: redis.Redis, name: str, source: str, target: str,
             pinned: str | None = None, source_image: str | None = None) -> dict[str, Any]:
    spec = make_spec("promote", "main", registry.server, reference=registry_ref(registry.server, name, target),
                     source=registry_ref(registry.server, source_image or name, source), digest=pinned)
    spec = dataclasses.replace(spec, source_registry="main", source_server=registry.server)
    return _outcome(lambda: tasks.promote(queued(redis_client, spec)))


def _outcome(run: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = run()
    except JobFailed as failed:
        return dict(failed.result)
    return result


def _run(redis_client: redis.Redis, action: str, registry: Registry, **fields: Any) -> dict[str, Any]:
    spec = make_spec(action, "main", registry.server, **fields)
    return _outcome(lambda: getattr(tasks, action)(queued(redis_client, spec)))


# -- immutable tags ------------------------------------------------------------------------------


def test_a_promote_never_moves_an_existing_immutable_tag_and_the_same_digest_is_a_no_op(
        context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis, writer: ImageWriter) -> None:
    _install(context, RELEASES)
    name, repo = _repo()
    release = writer.image(repo, "v1.4.2")
    candidate = writer.image(repo, "candidate")
    writer.put_manifest(repo, "same", release.manifest, release.media_type)

    refused = _promote(registry, redis_client, name, "candidate", "v1.4.2")
    assert refused["ok"] is False and refused["reason"] == "immutable"
    assert refused["message"] == (f"tag `v1.4.2` is immutable: it points at {release.digest[:19]} and stays there "
                                  "(guards.immutable[0])")
    assert registry.manifest_digest(repo, "v1.4.2") == release.digest

    again = _promote(registry, redis_client, name, "same", "v1.4.2")
    assert again["ok"] is True and again["digest"] == release.digest
    assert "already pointed" in again["message"]

    fresh = _promote(registry, redis_client, name, "candidate", "v1.5.0")  # a new release tag is written once
    assert fresh["ok"] is True and registry.manifest_digest(repo, "v1.5.0") == candidate.digest
    moved = _promote(registry, redis_client, name, "candidate", "latest")  # not covered: moves freely
    assert moved["ok"] is True and registry.manifest_digest(repo, "latest") == candidate.digest


def test_a_rollback_of_an_immutable_tag_is_refused_unless_it_already_points_there(
        context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis, writer: ImageWriter) -> None:
    _install(context, RELEASES)
    name, repo = _repo()
    older = writer.image(repo, "old")
    current = writer.image(repo, "v2")
    reference = registry_ref(registry.server, name, "v2")
    refused = _run(redis_client, "rollback", registry, reference=reference, digest=older.digest)
    assert refused["reason"] == "immutable" and current.digest[:19] in refused["message"]
    assert registry.manifest_digest(repo, "v2") == current.digest
    same = _run(redis_client, "rollback", registry, reference=reference, digest=current.digest)
    assert same["ok"] is True and "already pointed" in same["message"]


def test_a_delete_of_an_immutable_tag_or_of_a_manifest_one_points_at_is_refused(
        context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis, writer: ImageWriter) -> None:
    _install(context, RELEASES)
    name, repo = _repo()
    release = writer.image(repo, "v3")
    writer.put_manifest(repo, "alias", release.manifest, release.media_type)
    writer.image(repo, "scratch")

    refused = _run(redis_client, "delete", registry, reference=registry_ref(registry.server, name, "v3"))
    assert refused["reason"] == "immutable" and "tag `v3` is immutable" in refused["message"]
    through = make_spec("delete", "main", registry.server, reference=registry_ref(registry.server, name, "alias"))
    through = dataclasses.replace(through, shared=True)
    refused_through = _outcome(lambda: tasks.delete(queued(redis_client, through)))
    assert refused_through["reason"] == "immutable"
    assert "also tagged `v3`, which is immutable" in refused_through["message"]
    by_digest = _run(redis_client, "delete", registry,
                     reference=f"{registry.server}/{repo}@{release.digest}")
    assert by_digest["reason"] == "immutable" and "also tagged `v3`" in by_digest["message"]
    assert registry.manifest_digest(repo, "v3") == release.digest
    assert registry.manifest_digest(repo, "alias") == release.digest

    deleted = _run(redis_client, "delete", registry, reference=registry_ref(registry.server, name, "scratch"))
    assert deleted["ok"] is True and registry.manifest_digest(repo, "scratch") is None  # no rule covers it


def test_a_push_onto_an_immutable_tag_is_refused_unless_the_local_image_is_that_manifest(
        context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry,
        redis_client: redis.Redis) -> None:
    _install(context, RELEASES)
    name, repo = _repo()
    reference = registry_ref(registry.server, name, "v1.0")
    first = local_image(docker_engine, layers=1)
    pushed = _run(redis_client, "push", registry, reference=reference, source=first)
    assert pushed["ok"] is True
    digest = registry.manifest_digest(repo, "v1.0")
    assert digest == pushed["digest"]

    again = _run(redis_client, "push", registry, reference=reference, source=first)
    assert again["ok"] is True and again["digest"] == digest
    assert "already pointed" in again["message"] and "nothing was pushed" in again["message"]

    other = local_image(docker_engine, layers=1)  # never pushed: the engine knows no digest for it
    spec = make_spec("push", "main", registry.server, reference=reference, source=other)
    refused = _outcome(lambda: tasks.push(queued(redis_client, spec)))
    assert refused["reason"] == "immutable" and f"it points at {digest[:19]}" in refused["message"]
    assert registry.manifest_digest(repo, "v1.0") == digest
    record = record_of(redis_client, spec.job_id)
    assert record.state == "failed" and record.reason == "immutable"


def test_two_racing_promotes_onto_a_fresh_immutable_tag_leave_exactly_one_winner(
        context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis, writer: ImageWriter) -> None:
    _install(context, RELEASES)
    name, repo = _repo()
    sources = {"left": writer.image(repo, "left").digest, "right": writer.image(repo, "right").digest}
    start = threading.Barrier(2)
    results: dict[str, dict[str, Any]] = {}

    def race(source: str) -> None:
        start.wait()
        results[source] = _promote(registry, redis_client, name, source, "v9.0.0")

    threads = [threading.Thread(target=race, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(result["ok"] for result in results.values()) == [False, True]
    winner = next(source for source, result in results.items() if result["ok"])
    loser = next(result for result in results.values() if not result["ok"])
    assert loser["reason"] == "immutable"
    assert registry.manifest_digest(repo, "v9.0.0") == sources[winner] == results[winner]["digest"]


def test_the_registry_down_during_the_check_is_a_retryable_failure_and_nothing_is_pushed(
        context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry, redis_client: redis.Redis,
        setup: WorkerSetup) -> None:
    # The engine reaches the registry; the worker's API client (the check) does not.
    def unreachable(credentials: RegistryCredentials) -> RegistryClient:
        return client_for(dataclasses.replace(credentials, api_url=f"http://{setup.dead_server}"),
                          timeout=(1.0, 2.0))

    _install(context, RELEASES, registry_client=unreachable)
    name, repo = _repo()
    result = _run(redis_client, "push", registry, reference=registry_ref(registry.server, name, "v1.0"),
                  source=local_image(docker_engine, layers=1))
    assert result["ok"] is False and result["reason"] == "registry_unreachable" and result["retryable"] is True
    assert registry.manifest_digest(repo, "v1.0") is None


# -- promotion paths -----------------------------------------------------------------------------


def test_a_promote_that_skips_a_stage_or_comes_from_another_image_is_refused_with_the_path(
        context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis, writer: ImageWriter) -> None:
    _install(context, PATH)
    name, repo = _repo()
    dev = writer.image(repo, "dev")
    writer.image(repo, "staging")
    other, other_repo = _repo("other")
    writer.image(other_repo, "staging")

    skipped = _promote(registry, redis_client, name, "dev", "prod")
    assert skipped["reason"] == "promotion_path"
    assert "dev → staging → prod" in skipped["message"] and "from `staging`" in skipped["message"]
    foreign = _promote(registry, redis_client, name, "staging", "prod", source_image=other)
    assert foreign["reason"] == "promotion_path"
    assert registry.manifest_digest(repo, "prod") is None

    first_stage = _promote(registry, redis_client, name, "dev", "staging")  # dev → staging is the path
    assert first_stage["ok"] is True and registry.manifest_digest(repo, "staging") == dev.digest
    allowed = _promote(registry, redis_client, name, "staging", "prod")
    assert allowed["ok"] is True and registry.manifest_digest(repo, "prod") == dev.digest


def test_a_pinned_promote_runs_only_while_the_source_stage_is_still_at_the_pin(
        context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis, writer: ImageWriter) -> None:
    _install(context, PATH)
    name, repo = _repo()
    pinned = writer.image(repo, "staging")
    accepted = _promote(registry, redis_client, name, "staging", "prod", pinned=pinned.digest)
    assert accepted["ok"] is True and registry.manifest_digest(repo, "prod") == pinned.digest

    moved = writer.image(repo, "staging")  # staging moves on after the pin was taken
    writer.image(repo, "prod")
    before = registry.manifest_digest(repo, "prod")
    refused = _promote(registry, redis_client, name, "staging", "prod", pinned=pinned.digest)
    assert refused["reason"] == "source_moved"
    assert refused["message"].startswith(f"staging moved: it is at {moved.digest[:19]} now, "
                                         f"not the pinned {pinned.digest[:19]}")
    assert registry.manifest_digest(repo, "prod") == before


def test_a_push_to_a_later_stage_is_refused_and_to_the_first_stage_allowed(
        context: tasks.TaskContext, docker_engine: DockerEngine, registry: Registry,
        redis_client: redis.Redis) -> None:
    _install(context, PATH)
    name, repo = _repo()
    image = local_image(docker_engine, layers=1)
    refused = _run(redis_client, "push", registry, reference=registry_ref(registry.server, name, "prod"),
                   source=image)
    assert refused["reason"] == "promotion_path" and "dev → staging → prod" in refused["message"]
    assert registry.manifest_digest(repo, "prod") is None
    allowed = _run(redis_client, "push", registry, reference=registry_ref(registry.server, name, "dev"),
                   source=image)
    assert allowed["ok"] is True and registry.manifest_digest(repo, "dev") == allowed["digest"]


# -- break-glass -------------------------------------------------------------------------------------


def test_a_break_glass_job_passes_a_path_and_a_freeze_but_never_an_immutable_tag(
        context: tasks.TaskContext, registry: Registry, redis_client: redis.Redis, writer: ImageWriter) -> None:
    """``spec.override`` is set only on a job a second freeze-holder approved at the bot (break-glass)."""
    _install(context, Guards(promotion_paths=PATH.promotion_paths, immutable=RELEASES.immutable))
    name, repo = _repo()
    dev = writer.image(repo, "dev")
    start_freeze(redis_client, Scope(), 0, 4_000_000_000, "incident", "U0ADMIN")

    def promote(source: str, target: str, override: str | None) -> dict[str, Any]:
        spec = make_spec("promote", "main", registry.server, reference=registry_ref(registry.server, name, target),
                         source=registry_ref(registry.server, name, source))
        spec = dataclasses.replace(spec, source_registry="main", source_server=registry.server, override=override)
        return _outcome(lambda: tasks.promote(queued(redis_client, spec)))

    assert promote("dev", "prod", None)["reason"] == "frozen"
    skipped = promote("dev", "prod", "hotfix for INC-42")  # frozen and off the path: break-glass passes both
    assert skipped["ok"] is True and registry.manifest_digest(repo, "prod") == dev.digest
    writer.image(repo, "v1.0")
    refused = promote("dev", "v1.0", "hotfix for INC-42")  # an immutable tag stays, override or not
    assert refused["reason"] == "immutable"
