"""copy_image against real registries: same repository, across repositories (mounts), across registries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.registry_images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageWriter,
)
from tests.support.registry_proxy import RegistryProxy
from tests.support.services import Registry
from tests.workers.registry.conftest import client_of, repo
from workers.kernel.secrets import Secret
from workers.registry.client import RegistryClient
from workers.registry.copy import copy_image

ROOT = Path(__file__).resolve().parents[3]


def _upload_lines(registry: Registry, repository: str) -> list[str]:
    """Access-log lines of blob uploads that carried bytes (PATCH, or PUT with a body) into ``repository``."""
    return [line for line in registry.log_text().splitlines()
            if f'"PATCH /v2/{repository}/blobs/uploads/' in line]


def test_same_repository_by_tag_is_one_manifest_put(
    writer: ImageWriter, client: RegistryClient, registry: Registry
) -> None:
    name = repo()
    image = writer.image(name, "1.0-rc1")
    result = copy_image(client, name, "1.0-rc1", client, name, "1.0")
    assert (result.digest, result.media_type, result.manifests_put) == (image.digest, OCI_MANIFEST, 1)
    assert (result.blobs_mounted, result.blobs_uploaded, result.blobs_skipped, result.bytes_uploaded) == (0, 0, 0, 0)
    assert registry.manifest_digest(name, "1.0") == image.digest


def test_same_repository_by_digest(writer: ImageWriter, client: RegistryClient, registry: Registry) -> None:
    """A rollback: the old manifest, named by its digest, under the tag again."""
    name = repo()
    old = writer.image(name, "1.0")
    writer.image(name, "1.0")  # the tag moved on
    assert registry.manifest_digest(name, "1.0") != old.digest
    result = copy_image(client, name, old.digest, client, name, "1.0")
    assert result.digest == old.digest and result.manifests_put == 1
    assert registry.manifest_digest(name, "1.0") == old.digest


def test_across_repositories_every_blob_is_mounted_and_none_uploaded(
    writer: ImageWriter, client: RegistryClient, registry: Registry
) -> None:
    source, target = repo("staging"), repo("production")
    image = writer.image(source, "1.0", layers=3)
    result = copy_image(client, source, "1.0", client, target, "1.0")
    assert result.blobs_mounted == len(image.blobs) == 4
    assert (result.blobs_uploaded, result.bytes_uploaded, result.blobs_skipped) == (0, 0, 0)
    assert result.digest == image.digest == registry.manifest_digest(target, "1.0")
    assert all(writer.has_blob(target, blob.digest) for blob in image.blobs)
    # The registry's own access log: mounts, and not one upload that carried bytes.
    log = registry.log_text()
    assert log.count(f'"POST /v2/{target}/blobs/uploads/?mount=') == 4
    assert _upload_lines(registry, target) == []


def test_across_repositories_an_index_and_its_platforms(writer: ImageWriter, client: RegistryClient) -> None:
    source, target = repo("staging"), repo("production")
    index = writer.index(source, "2.0")
    result = copy_image(client, source, "2.0", client, target, "2.0")
    assert result.digest == index.digest and result.media_type == OCI_INDEX
    assert result.manifests_put == 3 and result.blobs_mounted == len(index.blobs) and result.blobs_uploaded == 0
    for image in index.images:
        served = writer.get_manifest(target, image.digest)
        assert served is not None and served[0] == image.manifest


def test_a_registry_that_refuses_mounts_gets_the_blobs_streamed(writer: ImageWriter, registry: Registry) -> None:
    source, target = repo("staging"), repo("production")
    image = writer.image(source, "1.0", layers=2)
    with RegistryProxy(registry.base_url, refuse_mounts=True) as proxy, \
            RegistryClient(proxy.base_url, registry.username, Secret(registry.password)) as client:
        result = copy_image(client, source, "1.0", client, target, "1.0")
    assert result.blobs_mounted == 0 and result.blobs_uploaded == 3 and result.bytes_uploaded == image.size
    assert result.digest == image.digest == registry.manifest_digest(target, "1.0")
    # Each refused mount's upload session was cancelled, and each blob then uploaded with its bytes.
    log = registry.log_text()
    assert log.count(f'"DELETE /v2/{target}/blobs/uploads/') == 3
    assert len(_upload_lines(registry, target)) == 3


def test_across_registries_blobs_stream_and_digests_stay(
    writer: ImageWriter, other_writer: ImageWriter, client: RegistryClient, other_registry: Registry
) -> None:
    source, target = repo(), repo()
    image = writer.image(source, "1.0", layers=2, layer_size=300_000)
    with client_of(other_registry) as other:
        result = copy_image(client, source, "1.0", other, target, "1.0")
    assert result.digest == image.digest == other_registry.manifest_digest(target, "1.0")
    assert result.blobs_uploaded == 3 and result.blobs_mounted == 0 and result.blobs_skipped == 0
    assert result.bytes_uploaded == image.size
    served = other_writer.get_manifest(target, "1.0")
    assert served is not None and served[0] == image.manifest


def test_across_registries_blobs_the_target_has_are_skipped(
    writer: ImageWriter, other_writer: ImageWriter, client: RegistryClient, other_client: RegistryClient
) -> None:
    source, target = repo(), repo()
    base = writer.image(source, "base", layers=2)
    first = copy_image(client, source, "base", other_client, target, "base")
    assert first.blobs_uploaded == 3
    child = writer.image(source, "app", layers=1, shared_layers=base.layers)
    result = copy_image(client, source, "app", other_client, target, "app")
    assert result.blobs_skipped == 2 and result.blobs_uploaded == 2  # the new layer and the new config
    assert result.bytes_uploaded == child.layers[-1].size + child.config.size
    assert result.digest == child.digest and other_writer.get_manifest(target, "app") is not None


def test_across_registries_an_index_children_first(
    writer: ImageWriter, other_writer: ImageWriter, client: RegistryClient, other_client: RegistryClient,
    other_registry: Registry,
) -> None:
    source, target = repo(), repo()
    index = writer.index(source, "multi", media_type=DOCKER_MANIFEST_LIST)
    result = copy_image(client, source, "multi", other_client, target, "multi")
    assert result.digest == index.digest == other_registry.manifest_digest(target, "multi")
    assert result.manifests_put == 3 and result.blobs_uploaded == len(index.blobs)
    lines = [line for line in other_registry.log_text().splitlines() if f'"PUT /v2/{target}/manifests/' in line]
    assert len(lines) == 3 and "/manifests/multi " in lines[-1]  # the index last, after both children


@pytest.mark.parametrize("kind", [DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX])
def test_byte_exact_for_all_four_types(
    writer: ImageWriter, other_writer: ImageWriter, client: RegistryClient, other_client: RegistryClient,
    kind: str,
) -> None:
    source = repo()
    pushed = writer.index(source, "1.0", media_type=kind) if kind in (DOCKER_MANIFEST_LIST, OCI_INDEX) \
        else writer.image(source, "1.0", media_type=kind)
    for target_client, target_writer in ((client, writer), (other_client, other_writer)):
        target = repo()
        result = copy_image(client, source, "1.0", target_client, target, "2.0")
        served = target_writer.get_manifest(target, "2.0")
        assert served is not None
        data, content_type, digest = served
        assert data == pushed.manifest and content_type == kind == result.media_type
        assert digest == pushed.digest == result.digest


def test_a_large_image_across_registries_in_constant_memory(
    writer: ImageWriter, registry: Registry, other_registry: Registry, other_writer: ImageWriter
) -> None:
    """1 GiB of layers streamed registry to registry by a process that never holds more than a few chunks."""
    source, target = repo("big"), repo("big")
    layer = writer.big_blob(source, 1024 * 1024 * 1024, seed=42)
    image = writer.image(source, "1.0", layers=0, shared_layers=(layer,))
    environ = {**os.environ, "SOURCE_PASSWORD": registry.password, "TARGET_PASSWORD": other_registry.password,
               "PYTHONPATH": str(ROOT)}
    ran = subprocess.run(
        [sys.executable, "-m", "tests.support.copy_memory", registry.base_url, registry.username, source, "1.0",
         other_registry.base_url, other_registry.username, target, "1.0"],
        capture_output=True, text=True, env=environ, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert report["digest"] == image.digest and report["bytes_uploaded"] == image.size
    assert report["max_rss_mb"] < 150, report
    print(f"peak RSS of the copy: {report['max_rss_mb']:.0f} MB")
    assert other_writer.has_blob(target, layer.digest)
