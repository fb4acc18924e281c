"""Manifests, challenges and base URLs without a registry: parsing, digests, media types."""

from __future__ import annotations

import hashlib
import json

import pytest

from workers.registry.auth import parse_challenge
from workers.registry.manifests import (
    ACCEPT,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    ManifestError,
    Platform,
    blobs_of,
    children_of,
    compute_digest,
    media_type_of,
)
from workers.registry.urls import registry_base_url

D1, D2, D3 = ("sha256:" + c * 64 for c in "abc")


def test_the_accept_header_names_all_four_types() -> None:
    assert set(ACCEPT.split(", ")) == {DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX}
    assert len(MEDIA_TYPES) == 4


def test_the_digest_is_of_the_exact_bytes() -> None:
    compact, spaced = b'{"a":1}', b'{"a": 1}'
    assert compute_digest(compact) == "sha256:" + hashlib.sha256(compact).hexdigest()
    assert compute_digest(compact) != compute_digest(spaced)
    assert Manifest(spaced, OCI_MANIFEST).digest == compute_digest(spaced)


def test_blobs_of_an_image_are_its_config_then_its_layers_once_each() -> None:
    document = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": "c", "digest": D1, "size": 10},
                "layers": [{"mediaType": "l", "digest": D2, "size": 20}, {"mediaType": "l", "digest": D3, "size": 30},
                           {"mediaType": "l", "digest": D2, "size": 20}]}
    blobs = blobs_of(Manifest(json.dumps(document).encode(), DOCKER_MANIFEST))
    assert [(b.digest, b.size) for b in blobs] == [(D1, 10), (D2, 20), (D3, 30)]


def test_children_of_an_index_carry_their_platforms() -> None:
    document = {"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": D1, "size": 5, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": D2, "size": 6,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    ]}
    children = children_of(Manifest(json.dumps(document).encode(), OCI_INDEX))
    assert [c.platform for c in children] == [Platform("linux", "amd64"), Platform("linux", "arm64", "v8")]
    assert str(children[1].platform) == "linux/arm64/v8"
    with pytest.raises(ManifestError):
        blobs_of(Manifest(json.dumps(document).encode(), OCI_INDEX))


def test_a_descriptor_without_a_sha256_digest_is_refused() -> None:
    document = {"config": {"digest": "md5:abc", "size": 1}, "layers": []}
    with pytest.raises(ManifestError, match="digest"):
        blobs_of(Manifest(json.dumps(document).encode(), OCI_MANIFEST))


@pytest.mark.parametrize("content_type,document,expected", [
    (DOCKER_MANIFEST, {"mediaType": DOCKER_MANIFEST}, DOCKER_MANIFEST),
    ("application/vnd.oci.image.index.v1+json; charset=utf-8", {}, OCI_INDEX),
    ("application/json", {"mediaType": DOCKER_MANIFEST_LIST}, DOCKER_MANIFEST_LIST),
    (None, {"manifests": []}, OCI_INDEX),
    (None, {"layers": []}, OCI_MANIFEST),
])
def test_the_media_type_is_the_served_one_else_the_declared_one(
    content_type: str | None, document: dict[str, object], expected: str
) -> None:
    assert media_type_of(json.dumps(document).encode(), content_type) == expected


def test_a_bearer_challenge_with_quoted_commas() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://auth.example.com/token"
    assert challenge.params["service"] == "registry.example.com"
    assert challenge.scopes == {"repository:a/b:pull,push", "repository:c:pull"}
    assert challenge.params["error"] == "insufficient_scope"


def test_a_basic_challenge_and_no_challenge() -> None:
    basic = parse_challenge('Basic realm="regops-test"')
    assert basic is not None and basic.scheme == "basic" and basic.params == {"realm": "regops-test"}
    assert parse_challenge(None) is None and parse_challenge("") is None


@pytest.mark.parametrize("server,insecure,expected", [
    ("127.0.0.1:5000", None, "http://127.0.0.1:5000"),
    ("127.3.4.5:5000", None, "http://127.3.4.5:5000"),
    ("localhost:5000", None, "http://localhost:5000"),
    ("[::1]:5000", None, "http://[::1]:5000"),
    ("::1", None, "http://::1"),
    ("dockerhub.example.com:5100", None, "https://dockerhub.example.com:5100"),
    ("10.0.0.1:5000", None, "https://10.0.0.1:5000"),
    ("dockerhub.example.com:5100", True, "http://dockerhub.example.com:5100"),
    ("127.0.0.1:5000", False, "https://127.0.0.1:5000"),
])
def test_the_base_url_is_plain_http_only_on_loopback_or_when_insecure(
    server: str, insecure: bool | None, expected: str
) -> None:
    assert registry_base_url(server, insecure) == expected
