"""The Bearer token flow against Distribution's ``auth: token`` and a token service of the test's own."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support.registry_images import ImageWriter
from tests.support.services import Registry
from tests.support.token_auth import TokenService
from tests.workers.registry.conftest import client_of, repo
from workers.registry.client import RegistryClient
from workers.registry.copy import copy_image
from workers.registry.errors import AuthFailed, Denied


@pytest.fixture
def token_client(token_registry: Registry) -> Iterator[RegistryClient]:
    with client_of(token_registry) as made:
        yield made


def _new_requests(service: TokenService, since: int) -> list[tuple[str, ...]]:
    return [request.scopes for request in service.requests[since:] if request.authorized]


def test_the_client_follows_the_challenge_and_caches_the_token_per_scope(
    token_writer: ImageWriter, token_client: RegistryClient, token_service: TokenService
) -> None:
    name = repo()
    image = token_writer.image(name, "1.0")
    before = len(token_service.requests)
    assert token_client.tags(name) == ["1.0"]
    assert token_client.auth.scheme == "bearer"
    assert token_client.manifest(name, "1.0").digest == image.digest
    assert token_client.head_manifest(name, "1.0") == image.digest
    assert token_client.inspect(name, "1.0").digest == image.digest
    pull = (f"repository:{name}:pull",)
    assert _new_requests(token_service, before) == [pull]  # one token for every read of the repository
    assert {request.service for request in token_service.requests[before:]} == {token_service.service}
    token_client.put_manifest(name, "2.0", token_client.manifest(name, "1.0"))
    assert _new_requests(token_service, before) == [pull, (f"repository:{name}:pull,push",)]
    assert token_client.auth.token_requests == 2


def test_a_mount_across_repositories_asks_for_both_scopes_in_one_token(
    token_writer: ImageWriter, token_client: RegistryClient, token_service: TokenService
) -> None:
    source, target = repo("staging"), repo("production")
    image = token_writer.image(source, "1.0", layers=2)
    token_client.ping()
    before = len(token_service.requests)
    result = copy_image(token_client, source, "1.0", token_client, target, "1.0")
    assert result.blobs_mounted == 3 and result.blobs_uploaded == 0 and result.digest == image.digest
    asked = [set(scopes) for scopes in _new_requests(token_service, before)]
    both = {f"repository:{source}:pull", f"repository:{target}:pull,push"}
    assert asked.count(both) == 1, asked  # one token for the three mounts
    assert asked == [{f"repository:{source}:pull"}, both, {f"repository:{target}:pull,push"}]


def test_an_expired_token_is_renewed_after_the_401(token_writer: ImageWriter, token_registry: Registry,
                                                   token_service: TokenService) -> None:
    name = repo()
    token_writer.image(name, "1.0")
    now = [0.0]
    with client_of(token_registry) as client:
        client.auth._clock = lambda: now[0]
        client.tags(name)
        # The client still thinks its token is good; the registry has been sent one that was revoked.
        key = frozenset({f"repository:{name}:pull"})
        client.auth._tokens[key].value = "not.a.token"
        before = len(token_service.requests)
        assert client.tags(name) == ["1.0"]
        assert _new_requests(token_service, before) == [(f"repository:{name}:pull",)]
        now[0] += 10_000  # and long after the token expired: a new one without a 401 first
        client.tags(name)
        assert len(_new_requests(token_service, before)) == 2


def test_the_token_may_come_as_access_token(token_writer: ImageWriter, token_client: RegistryClient,
                                            token_service: TokenService) -> None:
    name = repo()
    token_writer.image(name, "1.0")
    token_service.field = "access_token"
    try:
        assert token_client.tags(name) == ["1.0"]
    finally:
        token_service.field = "token"


def test_a_wrong_password_at_the_token_service_is_auth_failed_and_leaks_nothing(
    token_registry: Registry, token_writer: ImageWriter, token_service: TokenService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    name = repo()
    token_writer.image(name, "1.0")
    wrong = "Wr0ng-t0ken-passw0rd"
    with client_of(token_registry, password=wrong) as client, pytest.raises(AuthFailed) as caught:
        client.tags(name)
    assert caught.value.reason == "auth_failed" and not caught.value.retryable
    assert not token_service.requests[-1].authorized
    assert wrong not in caplog.text and wrong not in str(caught.value)


def test_no_token_or_password_in_the_logs(token_writer: ImageWriter, token_client: RegistryClient,
                                          token_service: TokenService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    name = repo()
    token_writer.image(name, "1.0")
    copy_image(token_client, name, "1.0", token_client, repo(), "1.0")
    with pytest.raises(Exception) as caught:
        token_client.manifest(name, "absent")
    tokens = [token.value for token in token_client.auth._tokens.values()]
    assert tokens and caplog.text
    for secret in [*tokens, token_service.password]:
        assert secret not in caplog.text and secret not in str(caught.value)
    assert "Bearer ey" not in caplog.text


def test_a_token_without_the_push_scope_is_denied(token_writer: ImageWriter, token_client: RegistryClient,
                                                  token_service: TokenService) -> None:
    name = repo()
    token_writer.image(name, "1.0")
    manifest = token_client.manifest(name, "1.0")
    token_service.read_only.add(name)
    try:
        with pytest.raises(Denied) as caught:
            token_client.put_manifest(name, "2.0", manifest)
    finally:
        token_service.read_only.discard(name)
    assert caught.value.reason == "denied" and not caught.value.retryable
    assert token_client.head_manifest(name, "2.0") is None


def test_a_token_carrying_its_certificate_in_x5c_is_accepted_too(
    token_writer: ImageWriter, token_registry: Registry, token_service: TokenService
) -> None:
    name = repo()
    image = token_writer.image(name, "1.0")
    token_service.signing = "x5c"
    try:
        with client_of(token_registry) as client:
            assert client.head_manifest(name, "1.0") == image.digest
    finally:
        token_service.signing = "kid"


def test_an_index_copied_into_the_token_registry_streams_its_blobs(
    writer: ImageWriter, client: RegistryClient, token_client: RegistryClient, token_writer: ImageWriter,
    token_service: TokenService,
) -> None:
    source, target = repo(), repo()
    index = writer.index(source, "multi")
    before = len(token_service.requests)
    result = copy_image(client, source, "multi", token_client, target, "multi")
    assert result.digest == index.digest and result.blobs_uploaded == len(index.blobs) and result.manifests_put == 3
    served = token_writer.get_manifest(target, "multi")
    assert served is not None and served[0] == index.manifest
    # HEADs, uploads and manifest PUTs of the target repository: reads and writes, a token each.
    assert {scopes for scopes in _new_requests(token_service, before)} <= {
        (f"repository:{target}:pull",), (f"repository:{target}:pull,push",)}
