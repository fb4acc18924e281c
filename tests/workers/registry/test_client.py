"""The client against a real Distribution registry: tags, manifests, digests, blobs, inspect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.registry_images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageWriter,
    bearer,
    sha256,
)
from tests.support.registry_proxy import RegistryProxy
from tests.support.services import Registry
from tests.support.token_auth import TokenService
from tests.workers.registry.conftest import client_of, repo
from workers.kernel.secrets import Secret
from workers.registry.client import RegistryClient
from workers.registry.errors import DigestMismatch, NotFound
from workers.registry.manifests import Manifest


@pytest.fixture
def paging_client(registry: Registry) -> Iterator[tuple[RegistryClient, RegistryProxy]]:
    with RegistryProxy(registry.base_url, page_tags=True) as proxy, \
            RegistryClient(proxy.base_url, registry.username, Secret(registry.password)) as made:
        yield made, proxy


def test_tags_follow_the_next_links_page_by_page(
    writer: ImageWriter, paging_client: tuple[RegistryClient, RegistryProxy]
) -> None:
    client, proxy = paging_client
    name = repo()
    image = writer.image(name, "seed")
    wanted = [f"1.{i}" for i in range(23)]
    writer.tags(name, image.manifest, image.media_type, wanted)
    tags = client.tags(name, page_size=5)
    assert sorted(tags) == sorted([*wanted, "seed"]) and len(tags) == 24
    pages = [path for path in proxy.paths if "/tags/list" in path]
    # The first page twice: once without credentials, answered with the challenge.
    assert len(pages) == 6 and len(set(pages)) == 5, pages
    assert "n=5" in pages[0] and "last=" in pages[-1]


def test_tags_of_distribution_2_8_come_in_one_answer_whatever_the_page_size(
    writer: ImageWriter, client: RegistryClient
) -> None:
    name = repo()
    image = writer.image(name, "a")
    writer.put_manifest(name, "b", image.manifest, image.media_type)
    assert sorted(client.tags(name, page_size=1)) == ["a", "b"]


def test_tags_of_an_unknown_repository_is_not_found_naming_it(client: RegistryClient) -> None:
    name = repo("absent")
    with pytest.raises(NotFound) as caught:
        client.tags(name)
    assert caught.value.user_message == f"`{name}` is not in the registry"
    assert caught.value.reason == "not_found" and not caught.value.retryable


@pytest.mark.parametrize("media_type", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_a_manifest_is_served_byte_exact_with_its_type_and_verified_digest(
    writer: ImageWriter, client: RegistryClient, registry: Registry, media_type: str
) -> None:
    name = repo()
    image = writer.image(name, "1.0", media_type=media_type)
    manifest = client.manifest(name, "1.0")
    assert manifest.data == image.manifest
    assert manifest.media_type == media_type
    assert manifest.digest == image.digest == registry.manifest_digest(name, "1.0")
    assert client.manifest(name, image.digest).data == image.manifest
    assert client.head_manifest(name, "1.0") == image.digest


def test_a_manifest_whose_bytes_do_not_match_its_digest_is_refused(writer: ImageWriter, registry: Registry) -> None:
    name = repo()
    image = writer.image(name, "1.0")
    with RegistryProxy(registry.base_url, tamper_manifests=True) as proxy, \
            RegistryClient(proxy.base_url, registry.username, Secret(registry.password)) as client:
        with pytest.raises(DigestMismatch) as caught:
            client.manifest(name, "1.0")
        with pytest.raises(DigestMismatch):
            client.manifest(name, image.digest)
    assert caught.value.reason == "registry_error"
    assert f"{name}:1.0" in caught.value.user_message


def test_head_of_a_missing_tag_is_none(writer: ImageWriter, client: RegistryClient) -> None:
    name = repo()
    writer.image(name, "1.0")
    assert client.head_manifest(name, "2.0") is None


def test_digests_of_many_tags_concurrently(writer: ImageWriter, client: RegistryClient) -> None:
    name = repo()
    first = writer.image(name, "a")
    second = writer.image(name, "b", media_type=DOCKER_MANIFEST)
    writer.tags(name, first.manifest, first.media_type, [f"a{i}" for i in range(40)])
    found = client.digests(name, ["a", "b", *[f"a{i}" for i in range(40)], "gone"], workers=8)
    assert found.pop("b") == second.digest
    assert set(found.values()) == {first.digest} and len(found) == 41
    assert "gone" not in found


@pytest.fixture(scope="module")
def thousand_tags(token_registry: Registry, token_service: TokenService) -> tuple[str, str]:
    name = repo("many")
    with ImageWriter(token_registry.base_url, bearer(token_service.issue)) as writer:
        image = writer.image(name, "1.0")
        writer.tags(name, image.manifest, image.media_type, [f"1.0.{i}" for i in range(999)], workers=8)
    return name, image.digest


def test_a_thousand_tags_with_their_digests(token_registry: Registry, thousand_tags: tuple[str, str]) -> None:
    """Every tag of a thousand, each with its digest, over the pooled concurrent HEADs.

    How fast is a benchmark's question (tests/benchmarks/registry.py), not this test's.
    """
    name, digest = thousand_tags
    with client_of(token_registry) as client:
        tags = client.tags(name)
        found = client.digests(name, tags)
    assert len(tags) == 1000 and set(found) == set(tags) and set(found.values()) == {digest}


def test_blobs_stream_down_and_up(writer: ImageWriter, client: RegistryClient) -> None:
    source, target = repo(), repo()
    blob = writer.big_blob(source, 3 * 1024 * 1024 + 17, seed=7)
    assert client.has_blob(source, blob.digest) and not client.has_blob(target, blob.digest)
    with client.open_blob(source, blob.digest, chunk_size=256 * 1024) as chunks:
        sizes = []

        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                sizes.append(len(chunk))
                yield chunk

        sent = client.upload_blob(target, blob.digest, counted())
    assert sent == blob.size and max(sizes) <= 256 * 1024 and len(sizes) >= 13
    assert writer.has_blob(target, blob.digest)


def test_an_upload_whose_bytes_are_not_the_digest_is_refused_and_cancelled(
    writer: ImageWriter, client: RegistryClient
) -> None:
    name = repo()
    claimed = sha256(b"what was promised")
    with pytest.raises(DigestMismatch):
        client.upload_blob(name, claimed, iter([b"something ", b"else"]))
    assert not writer.has_blob(name, claimed)


def test_a_missing_blob_is_named(client: RegistryClient) -> None:
    name = repo()
    digest = sha256(b"never pushed")
    with pytest.raises(NotFound) as caught, client.open_blob(name, digest):
        pass
    assert caught.value.user_message == f"blob `{digest[:19]}` is not in `{name}`"


def test_put_manifest_returns_the_digest_of_the_exact_bytes(writer: ImageWriter, client: RegistryClient) -> None:
    name = repo()
    image = writer.image(name, None)
    assert writer.get_manifest(name, "2.0") is None
    assert client.put_manifest(name, "2.0", Manifest(image.manifest, image.media_type)) == image.digest
    served = writer.get_manifest(name, "2.0")
    assert served is not None and served[0] == image.manifest and served[1] == image.media_type


def test_inspect_an_image(writer: ImageWriter, client: RegistryClient) -> None:
    name = repo()
    image = writer.image(name, "1.0", layers=3, layer_size=1000, labels={"org.opencontainers.image.version": "1.0"},
                         created="2026-03-04T05:06:07Z")
    seen = client.inspect(name, "1.0")
    assert (seen.digest, seen.media_type, seen.size, seen.layers) == (image.digest, OCI_MANIFEST, image.size, 3)
    assert seen.size == image.config.size + 3000
    assert seen.created == "2026-03-04T05:06:07Z"
    assert seen.labels == {"org.opencontainers.image.version": "1.0"}
    assert seen.platforms == () and not seen.is_index


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_inspect_an_index(writer: ImageWriter, client: RegistryClient, media_type: str) -> None:
    name = repo()
    index = writer.index(name, "multi", media_type=media_type, labels={"team": "search"})
    seen = client.inspect(name, "multi")
    assert seen.is_index and seen.digest == index.digest and seen.media_type == media_type
    assert [str(p.platform) for p in seen.platforms] == ["linux/amd64", "linux/arm64/v8"]
    assert [p.digest for p in seen.platforms] == [image.digest for image in index.images]
    assert [p.size for p in seen.platforms] == [image.size for image in index.images]
    assert [p.layers for p in seen.platforms] == [1, 2]
    assert [p.created for p in seen.platforms] == ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]
    assert seen.platforms[1].labels == {"team": "search", "platform": "linux/arm64/v8"}
    # The index as a whole: every distinct blob once; created and labels of its first platform.
    assert seen.size == sum(blob.size for blob in index.blobs) and seen.layers == 3
    assert seen.created == "2026-01-01T00:00:00Z" and seen.labels["platform"] == "linux/amd64"
