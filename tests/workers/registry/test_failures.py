"""Failures in users' words: delete (enabled and not), wrong password, a stopped registry, a missing tag,
and no credential in any message or log line."""

from __future__ import annotations

import logging
import socket

import pytest

from tests.support.registry_images import ImageWriter, basic
from tests.support.services import Registry
from tests.workers.registry.conftest import client_of, repo
from workers.credentials import RegistryCredentials
from workers.kernel.jobs import FAILURE_MESSAGES
from workers.kernel.secrets import Secret
from workers.registry.client import RegistryClient, client_for
from workers.registry.copy import copy_image
from workers.registry.errors import (
    AuthFailed,
    DeleteDisabled,
    NotFound,
    RegistryError,
    TimedOut,
    Unreachable,
)


def test_delete_removes_the_manifest_and_its_tags(writer: ImageWriter, client: RegistryClient,
                                                  registry: Registry) -> None:
    name = repo()
    image = writer.image(name, "1.0")
    writer.put_manifest(name, "latest", image.manifest, image.media_type)
    client.delete_manifest(name, image.digest)
    assert registry.manifest_digest(name, "1.0") is None and registry.manifest_digest(name, "latest") is None
    assert client.head_manifest(name, image.digest) is None
    with pytest.raises(NotFound):
        client.delete_manifest(name, image.digest)


def test_delete_on_a_registry_without_deletes_says_so(no_delete_registry: Registry) -> None:
    name = repo()
    with ImageWriter(no_delete_registry.base_url, basic(no_delete_registry.username,
                                                        no_delete_registry.password)) as writer:
        image = writer.image(name, "1.0")
    with client_of(no_delete_registry) as client, pytest.raises(DeleteDisabled) as caught:
        client.delete_manifest(name, image.digest)
    assert caught.value.reason == "delete_disabled" and not caught.value.retryable
    assert caught.value.user_message == "deleting is not enabled on this registry"
    assert no_delete_registry.manifest_digest(name, "1.0") == image.digest


def test_a_wrong_password_is_auth_failed_and_names_no_secret(
    registry: Registry, writer: ImageWriter, caplog: pytest.LogCaptureFixture
) -> None:
    name = repo()
    writer.image(name, "1.0")
    wrong = "Wr0ng-passw0rd-" + "x" * 12
    caplog.set_level(logging.DEBUG)
    with client_of(registry, password=wrong) as client:
        for call in (lambda: client.tags(name), lambda: client.manifest(name, "1.0"),
                     lambda: client.head_manifest(name, "1.0")):
            with pytest.raises(AuthFailed) as caught:
                call()
            assert caught.value.reason == "auth_failed" and not caught.value.retryable
            assert caught.value.user_message == FAILURE_MESSAGES["auth_failed"]
            assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert caplog.records and wrong not in caplog.text and "Basic " not in caplog.text


def test_a_stopped_registry_is_unreachable_and_retryable(registry: Registry, dead_server: str) -> None:
    credentials = RegistryCredentials(dead_server, "user", Secret("s3cret-value"))
    with client_for(credentials) as client:
        assert client.base_url == f"http://{dead_server}"
        with pytest.raises(Unreachable) as caught:
            client.tags("com.example.namespace/app")
    assert caught.value.reason == "registry_unreachable" and caught.value.retryable
    assert caught.value.user_message == "registry unreachable"


def test_a_registry_that_stops_answering_times_out_retryably() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        server = f"127.0.0.1:{listener.getsockname()[1]}"
        with RegistryClient(f"http://{server}", "user", Secret("pw-12345"), timeout=(1.0, 0.5)) as client, \
                pytest.raises(TimedOut) as caught:
            client.ping()
    assert caught.value.reason == "timed_out" and caught.value.retryable


def test_a_missing_tag_is_not_found_naming_it(writer: ImageWriter, client: RegistryClient) -> None:
    name = repo()
    writer.image(name, "1.0")
    for call in (lambda: client.manifest(name, "9.9"), lambda: client.inspect(name, "9.9"),
                 lambda: copy_image(client, name, "9.9", client, repo(), "1.0")):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.user_message == f"`{name}:9.9` is not in the registry"
        assert caught.value.reason == "not_found" and not caught.value.retryable


def test_no_password_in_logs_or_messages_across_a_whole_copy(
    registry: Registry, other_registry: Registry, writer: ImageWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3's and requests' own debug lines included
    name = repo()
    writer.image(name, "1.0")
    with client_of(registry) as source, client_of(other_registry) as target:
        copy_image(source, name, "1.0", target, repo(), "1.0")
        copy_image(source, name, "1.0", source, repo(), "1.0")
        with pytest.raises(RegistryError) as caught:
            target.manifest(name, "1.0")
    text = caplog.text + str(caught.value) + repr(caught.value)
    assert "copied" in caplog.text
    for secret in (registry.password, other_registry.password):
        assert secret not in text
    assert "Authorization" not in caplog.text and "Basic " not in caplog.text
