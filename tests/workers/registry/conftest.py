"""Registries for the registry client's tests: a second one, one without deletes, one with Bearer tokens.

Each extra registry is started once per session and depends on the session's ``registry``
fixture, which also puts these tests in the ``docker`` tier.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest

from tests.support.registry_images import ImageWriter, basic, bearer
from tests.support.services import Registry
from tests.support.token_auth import TokenService
from workers.kernel.secrets import Secret
from workers.registry.client import RegistryClient

_names = itertools.count()


def _started(registry: Registry) -> Registry:
    try:
        return registry.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def other_registry(registry: Registry) -> Iterator[Registry]:
    """A second registry, with its own login."""
    server = _started(Registry(username="promoter@other.example.com"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def no_delete_registry(registry: Registry) -> Iterator[Registry]:
    server = _started(Registry(delete_enabled=False))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_service(registry: Registry) -> Iterator[TokenService]:
    service = TokenService("robot$promoter", "T0ken-" + uuid.uuid4().hex)
    try:
        service.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield service
    service.stop()


@pytest.fixture(scope="session")
def token_registry(token_service: TokenService) -> Iterator[Registry]:
    """A registry with ``auth: token``: its username and password are the token service's."""
    server = _started(Registry(username=token_service.username, password=token_service.password,
                               token_auth=token_service))
    yield server
    server.stop()


def repo(prefix: str = "team") -> str:
    """A repository name nobody else uses, two path components like regops' namespace/image."""
    return f"{prefix}-{next(_names)}/img-{uuid.uuid4().hex[:8]}"


def client_of(registry: Registry, password: str | None = None) -> RegistryClient:
    return RegistryClient(registry.base_url, registry.username, Secret(password or registry.password),
                          timeout=(2.0, 30.0))


@pytest.fixture
def client(registry: Registry) -> Iterator[RegistryClient]:
    with client_of(registry) as made:
        yield made


@pytest.fixture
def other_client(other_registry: Registry) -> Iterator[RegistryClient]:
    with client_of(other_registry) as made:
        yield made


@pytest.fixture
def writer(registry: Registry) -> Iterator[ImageWriter]:
    with ImageWriter(registry.base_url, basic(registry.username, registry.password)) as made:
        yield made


@pytest.fixture
def other_writer(other_registry: Registry) -> Iterator[ImageWriter]:
    with ImageWriter(other_registry.base_url, basic(other_registry.username, other_registry.password)) as made:
        yield made


@pytest.fixture
def token_writer(token_registry: Registry, token_service: TokenService) -> Iterator[ImageWriter]:
    with ImageWriter(token_registry.base_url, bearer(token_service.issue)) as made:
        yield made
