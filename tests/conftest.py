"""Session fixtures for the real services tests run against (logic lives in tests/support/services.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TypeVar

import pytest
import redis

from tests.support.services import DockerEngine, RedisServer, Registry, Service

S = TypeVar("S", bound=Service)

_REDIS_FIXTURES = frozenset({"redis_server"})
_DOCKER_FIXTURES = frozenset({"docker_engine", "registry"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier from what it uses: e2e by folder, redis and docker by fixture, else unit."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        tiers = []
        if "e2e" in item.path.parts:
            tiers.append("e2e")
        if used & _REDIS_FIXTURES:
            tiers.append("redis")
        if used & _DOCKER_FIXTURES:
            tiers.append("docker")
        for tier in tiers or ["unit"]:
            item.add_marker(tier)


def _started(service: S) -> S:
    # A missing service is a broken test environment, not a reason to skip.
    try:
        return service.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = _started(RedisServer())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    engine = _started(DockerEngine())
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    server = _started(Registry())
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """An empty database for each test; bytes responses, as rq requires."""
    client = redis_server.client()
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """For tests of a process's logging set-up: put pytest's logging back afterwards."""
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    logging.captureWarnings(False)
