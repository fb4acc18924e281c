"""docker_ops against a real dockerd and a real registry with htpasswd auth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker
import pytest

from tests.support.services import DockerEngine, Registry
from tests.workers.conftest import NAMESPACE, WorkerSetup, local_image, registry_ref, unique_name
from workers import docker_ops
from workers.credentials import RegistryCredentials
from workers.errors import WorkerError
from workers.kernel.jobs import FailureReason
from workers.kernel.secrets import Secret


def creds_for(
    registry: Registry, password: str | None = None, server: str | None = None
) -> RegistryCredentials:
    return RegistryCredentials(
        server or registry.server, registry.username, Secret(password or registry.password)
    )


def repo_tags(api: docker.APIClient, image: str) -> list[str]:
    return list(api.inspect_image(image)["RepoTags"])


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("localhost:5000/ns/app:1.4.2", ("localhost:5000/ns/app", "1.4.2")),
        ("[::1]:5000/ns/app:latest", ("[::1]:5000/ns/app", "latest")),
        ("r.example.com/a/b/c:v_1", ("r.example.com/a/b/c", "v_1")),
    ],
)
def test_references_are_split_at_the_tag_never_at_a_port(reference: str, expected: tuple[str, str]) -> None:
    assert docker_ops.split_reference(reference) == expected


@pytest.mark.parametrize("reference", ["r.example.com:5100/ns/app", "localhost:5000/app:", "app:1@sha256:ab"])
def test_a_reference_without_a_tag_or_with_a_digest_is_refused(reference: str) -> None:
    with pytest.raises(WorkerError) as caught:
        docker_ops.split_reference(reference)
    assert caught.value.reason == FailureReason.INVALID_REFERENCE.value


@pytest.mark.parametrize(
    ("reference", "server"),
    [
        ("dockerhub.example.com:5100/com.example.namespace/app:1", "dockerhub.example.com:5100"),
        ("[::1]:5000/ns/app:1", "[::1]:5000"),
        ("docker.io/library/app:1", "docker.io"),
        # Where docker-py's split says Docker Hub but the engine contacts a host: the host as written.
        ("index.docker.io/library/app:1", "index.docker.io"),
        ("Registry/ns/app:1", "Registry"),
        ("library/app:1", None),
        ("app:1", None),
    ],
)
def test_registry_of_is_the_host_the_engine_contacts(reference: str, server: str | None) -> None:
    assert docker_ops.registry_of(reference) == server


@pytest.mark.parametrize("reference", ["https://r.example.com/ns/app:1", "-r.example.com/ns/app:1"])
def test_a_reference_naming_no_valid_registry_is_refused(reference: str) -> None:
    with pytest.raises(WorkerError) as caught:
        docker_ops.registry_of(reference)
    assert caught.value.reason == FailureReason.INVALID_REFERENCE.value


def test_tag_by_name_and_by_id(
    api: docker.APIClient, docker_engine: DockerEngine, registry: Registry
) -> None:
    source = local_image(docker_engine)
    image_id = api.inspect_image(source)["Id"]
    by_name, by_id = (
        registry_ref(registry.server, unique_name()),
        registry_ref(registry.server, unique_name()),
    )
    docker_ops.tag(api, source, by_name)
    docker_ops.tag(api, image_id, by_id)
    assert {by_name, by_id} <= set(repo_tags(api, source))


def test_tag_of_a_missing_image(api: docker.APIClient, registry: Registry) -> None:
    with pytest.raises(WorkerError) as caught:
        docker_ops.tag(api, "no-such-image:1.0", registry_ref(registry.server, "x"))
    assert caught.value.reason == FailureReason.IMAGE_NOT_FOUND.value
    assert caught.value.user_message == "local image no-such-image:1.0 not found"


def test_login_ok(api: docker.APIClient, registry: Registry) -> None:
    docker_ops.login(api, creds_for(registry))


def test_login_with_a_wrong_password(api: docker.APIClient, registry: Registry) -> None:
    with pytest.raises(WorkerError) as caught:
        docker_ops.login(api, creds_for(registry, password="definitely-wrong"))
    assert caught.value.reason == FailureReason.AUTH_FAILED.value
    assert caught.value.retryable is False
    assert "definitely-wrong" not in caught.value.user_message


def test_login_to_a_registry_that_is_down(
    api: docker.APIClient, registry: Registry, setup: WorkerSetup
) -> None:
    with pytest.raises(WorkerError) as caught:
        docker_ops.login(api, creds_for(registry, server=setup.dead_server))
    assert caught.value.reason == FailureReason.REGISTRY_UNREACHABLE.value
    assert caught.value.retryable is True
    assert caught.value.user_message == f"registry {setup.dead_server} is unreachable"


def test_push_lands_in_the_registry(
    api: docker.APIClient, docker_engine: DockerEngine, registry: Registry
) -> None:
    name = unique_name()
    reference = registry_ref(registry.server, name, "2.1")
    docker_ops.tag(api, local_image(docker_engine, layers=3), reference)
    lines: list[Mapping[str, Any]] = []
    digest = docker_ops.push(api, reference, creds_for(registry), lines.append)
    assert digest.startswith("sha256:")
    assert registry.manifest_digest(f"{NAMESPACE}/{name}", "2.1") == digest
    assert any(line.get("status") == "Pushed" for line in lines)


def test_push_pushes_only_the_named_tag(
    api: docker.APIClient, docker_engine: DockerEngine, registry: Registry
) -> None:
    name = unique_name()
    wanted, other = (
        registry_ref(registry.server, name, "wanted"),
        registry_ref(registry.server, name, "other"),
    )
    source = local_image(docker_engine)
    docker_ops.tag(api, source, wanted)
    docker_ops.tag(api, source, other)
    docker_ops.push(api, wanted, creds_for(registry))
    assert registry.manifest_digest(f"{NAMESPACE}/{name}", "wanted") is not None
    assert registry.manifest_digest(f"{NAMESPACE}/{name}", "other") is None


def test_push_with_a_wrong_password_fails_in_the_stream(
    api: docker.APIClient, docker_engine: DockerEngine, registry: Registry
) -> None:
    name = unique_name()
    reference = registry_ref(registry.server, name)
    docker_ops.tag(api, local_image(docker_engine), reference)
    with pytest.raises(WorkerError) as caught:
        docker_ops.push(api, reference, creds_for(registry, password="definitely-wrong"))
    assert caught.value.reason == FailureReason.AUTH_FAILED.value
    assert registry.manifest_digest(f"{NAMESPACE}/{name}", "1.0") is None


def test_push_of_a_missing_local_image(api: docker.APIClient, registry: Registry) -> None:
    reference = registry_ref(registry.server, unique_name())
    with pytest.raises(WorkerError) as caught:
        docker_ops.push(api, reference, creds_for(registry))
    assert caught.value.reason == FailureReason.IMAGE_NOT_FOUND.value
    assert caught.value.user_message == f"local image {reference} not found"


def test_push_to_a_registry_that_is_down(
    api: docker.APIClient, docker_engine: DockerEngine, registry: Registry, setup: WorkerSetup
) -> None:
    reference = registry_ref(setup.dead_server, unique_name())
    docker_ops.tag(api, local_image(docker_engine), reference)
    with pytest.raises(WorkerError) as caught:
        docker_ops.push(api, reference, creds_for(registry, server=setup.dead_server))
    assert caught.value.reason == FailureReason.REGISTRY_UNREACHABLE.value
    assert caught.value.retryable is True


def test_credentials_never_go_to_another_registry(
    api: docker.APIClient, docker_engine: DockerEngine, registry: Registry
) -> None:
    reference = registry_ref("elsewhere.example.com:5000", unique_name())
    docker_ops.tag(api, local_image(docker_engine), reference)
    with pytest.raises(WorkerError) as caught:
        docker_ops.push(api, reference, creds_for(registry))
    assert caught.value.reason == FailureReason.INVALID_REFERENCE.value
    assert registry.server in caught.value.user_message


def test_pull_after_removing_the_local_image(
    api: docker.APIClient, docker_engine: DockerEngine, registry: Registry
) -> None:
    name = unique_name()
    reference = registry_ref(registry.server, name)
    source = local_image(docker_engine)
    docker_ops.tag(api, source, reference)
    pushed = docker_ops.push(api, reference, creds_for(registry))
    api.remove_image(reference)
    api.remove_image(source)
    with pytest.raises(docker.errors.ImageNotFound):
        api.inspect_image(reference)

    lines: list[Mapping[str, Any]] = []
    pulled = docker_ops.pull(api, reference, creds_for(registry), lines.append)
    assert pulled == pushed
    assert f"{reference.rsplit(':', 1)[0]}@{pulled}" in api.inspect_image(reference)["RepoDigests"]
    assert any(line.get("status") == "Pull complete" for line in lines)


def test_pull_of_a_tag_the_registry_lacks(api: docker.APIClient, registry: Registry) -> None:
    reference = registry_ref(registry.server, unique_name(), "9.9")
    with pytest.raises(WorkerError) as caught:
        docker_ops.pull(api, reference, creds_for(registry))
    assert caught.value.reason == FailureReason.IMAGE_NOT_FOUND.value
    assert caught.value.user_message == f"image {reference} not found in the registry"


def test_pull_with_a_wrong_password(
    api: docker.APIClient, docker_engine: DockerEngine, registry: Registry
) -> None:
    reference = registry_ref(registry.server, unique_name())
    docker_ops.tag(api, local_image(docker_engine), reference)
    docker_ops.push(api, reference, creds_for(registry))
    with pytest.raises(WorkerError) as caught:
        docker_ops.pull(api, reference, creds_for(registry, password="definitely-wrong"))
    assert caught.value.reason == FailureReason.AUTH_FAILED.value


def test_engine_that_is_not_there(tmp_path: Any, registry: Registry) -> None:
    api = docker.APIClient(base_url=f"unix://{tmp_path}/missing.sock", version="1.41", timeout=5)
    with pytest.raises(WorkerError) as caught:
        docker_ops.login(api, creds_for(registry))
    assert caught.value.reason == FailureReason.ENGINE_UNREACHABLE.value
    assert caught.value.retryable is True
    assert caught.value.user_message == "Docker engine unreachable"
