"""Fixtures for worker tests: a worker config naming the test registry, clients, an installed task context."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import redis

from tests.support.services import DockerEngine, Registry, build_image
from workers import tasks
from workers.credentials import CredentialStore
from workers.errors import JobFailed
from workers.kernel.config import RegistryConfig, Retries, load_config
from workers.kernel.jobs import JobEvent, JobRecord, JobSpec
from workers.kernel.keys import EVENTS_STREAM, job_key

NAMESPACE = "com.example.namespace"
WRONG_PASSWORD = "Wr0ng-" + uuid.uuid4().hex
PASSWORD_ENV = "REGOPS_TEST_REGISTRY_PASSWORD"
WRONG_PASSWORD_ENV = "REGOPS_TEST_WRONG_PASSWORD"

FAST_RETRIES = Retries(attempts=3, backoff=0.1, max_backoff=0.2)

_names = itertools.count()


@dataclass(frozen=True)
class WorkerSetup:
    """A worker config file and the environment that goes with it."""

    config: Path
    environ: dict[str, str]
    registry: Registry
    dead_server: str

    def credentials(self) -> CredentialStore:
        return CredentialStore(load_config(self.config).registries, self.environ)


def registry_config(name: str, server: str, username: str, password_env: str) -> RegistryConfig:
    """One registry as the config gives it to the worker, its password in ``password_env``."""
    return RegistryConfig(name=name, server=server, services_hostname="", namespace=NAMESPACE,
                          username=username, password_env=password_env, password_file=None)


@pytest.fixture(scope="session")
def dead_server() -> str:
    """host:port where a registry ran and stopped: nothing listens there now."""
    stopped = Registry()
    with stopped:
        server = stopped.server
    return server


@pytest.fixture
def setup(tmp_path: Path, registry: Registry, dead_server: str) -> WorkerSetup:
    config = tmp_path / "regops.yaml"
    config.write_text(
        f"""
registries:
  main:
    server: "{registry.server}"
    services_hostname: namespace.example.com
    username: "{registry.username}"
    password_env: {PASSWORD_ENV}
  wrong:
    server: "{registry.server}"
    services_hostname: namespace.example.com
    username: "{registry.username}"
    password_env: {WRONG_PASSWORD_ENV}
  dead:
    server: "{dead_server}"
    services_hostname: namespace.example.com
    username: "{registry.username}"
    password_env: {PASSWORD_ENV}
default_registry: main
hosts: [build-1]
default_host: build-1
notify_channel: "#deploys"
"""
    )
    environ = {PASSWORD_ENV: registry.password, WRONG_PASSWORD_ENV: WRONG_PASSWORD}
    return WorkerSetup(config, environ, registry, dead_server)


@pytest.fixture
def api(docker_engine: DockerEngine) -> Iterator[docker.APIClient]:
    client = docker_engine.api()
    yield client
    client.close()


@pytest.fixture
def context(
    redis_client: redis.Redis, docker_engine: DockerEngine, setup: WorkerSetup
) -> Iterator[tasks.TaskContext]:
    """The task context installed as ``python -m workers`` installs it (progress not throttled,
    retries quick)."""
    ctx = tasks.TaskContext(
        redis=redis_client,
        docker_api=lambda: docker.APIClient(base_url=docker_engine.host, timeout=60),
        credentials=setup.credentials(),
        progress_interval=0.0,
        retries=FAST_RETRIES,
    )
    tasks.install(ctx)
    yield ctx
    tasks.uninstall()


def unique_name(prefix: str = "img") -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:8]}"


def local_image(docker_engine: DockerEngine, layers: int = 2, layer_size: int = 64 * 1024) -> str:
    """Build a fresh local image; returns ``name:tag`` (not a registry reference)."""
    name = unique_name("local")
    build_image(docker_engine.host, name, "1.0", layers=layers, layer_size=layer_size, seed=name)
    return f"{name}:1.0"


def registry_ref(server: str, image: str, tag: str = "1.0") -> str:
    return f"{server}/{NAMESPACE}/{image}:{tag}"


def make_spec(action: str, registry_name: str, server: str, **fields: str | None) -> JobSpec:
    return JobSpec(
        job_id=uuid.uuid4().hex,
        action=action,
        registry=registry_name,
        server=server,
        requester="U123TEST",
        **fields,  # type: ignore[arg-type]
    )


def record_job(connection: redis.Redis, spec: JobSpec, host: str = "build-1") -> None:
    """Write the job record the bot writes before it enqueues."""
    record = JobRecord(
        job_id=spec.job_id,
        action=spec.action,
        registry=spec.registry,
        host=host,
        requester=spec.requester,
        reference=spec.reference,
        source=spec.source,
        queued_at=0.0,
    )
    connection.hset(job_key(spec.job_id), mapping=dict(record.to_fields()))


def events_of(connection: redis.Redis, job_id: str) -> list[JobEvent]:
    out = []
    for _, raw in connection.xrange(EVENTS_STREAM):
        event = JobEvent.from_fields({k.decode(): v.decode() for k, v in raw.items()})
        if event.job_id == job_id:
            out.append(event)
    return out


def queued(connection: redis.Redis, spec: JobSpec) -> dict[str, Any]:
    """Record the job as the bot does before enqueueing; returns the payload rq would carry."""
    record_job(connection, spec)
    return spec.to_dict()


def record_of(connection: redis.Redis, job_id: str) -> JobRecord:
    raw = connection.hgetall(job_key(job_id))
    return JobRecord.from_fields({k.decode(): v.decode() for k, v in raw.items()})


def failed_run(run: Callable[[], object]) -> dict[str, Any]:
    """The outcome of a task run that must fail: the task raises JobFailed (rq books it failed) carrying it."""
    with pytest.raises(JobFailed) as info:
        run()
    return info.value.result
