"""Manifests as the registry serves them: the four media types, their exact bytes, what they refer to.

A manifest is kept as the bytes the registry sent (its digest is the sha256 of exactly those
bytes, so re-encoding the JSON would change it) together with its media type.  Parsing only
reads: an image manifest's config and layers (:func:`blobs_of`), an index's or list's child
manifests (:func:`children_of`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

IMAGE_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MEDIA_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
ACCEPT = ", ".join(MEDIA_TYPES)
"""The ``Accept`` header of every manifest request: without it Distribution may convert (schema1)."""

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class ManifestError(ValueError):
    """Bytes that are not a manifest of a known media type (a bug or a foreign registry; logged)."""


def compute_digest(data: bytes) -> str:
    """``sha256:<hex>`` of exactly ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(reference: str) -> bool:
    """Whether a manifest reference is a (sha256) digest rather than a tag."""
    return _DIGEST.fullmatch(reference) is not None


@dataclass(frozen=True)
class Platform:
    """An index child's platform: ``linux/arm64/v8``."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


@dataclass(frozen=True)
class Descriptor:
    """A reference to content: its digest, media type and size (and, for an index child, the platform)."""

    digest: str
    media_type: str
    size: int
    platform: Platform | None = None


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes, its media type and its digest (sha256 of the bytes)."""

    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return compute_digest(self.data)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def document(self) -> dict[str, Any]:
        return parse(self.data)

    def __repr__(self) -> str:
        return f"Manifest({self.media_type!r}, {self.digest!r}, {len(self.data)} bytes)"


def parse(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestError("not a JSON object")
    return document


def media_type_of(data: bytes, content_type: str | None) -> str:
    """The manifest's media type: the served Content-Type if it is one of the four, else the
    ``mediaType`` field; an OCI manifest or index may omit both, then an index is told by its
    ``manifests``.
    """
    served = (content_type or "").split(";")[0].strip()
    if served in MEDIA_TYPES:
        return served
    document = parse(data)
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared in MEDIA_TYPES:
        return declared
    return OCI_INDEX if "manifests" in document else OCI_MANIFEST


def _descriptor(item: Any, where: str) -> Descriptor:
    if not isinstance(item, dict):
        raise ManifestError(f"{where} is not an object")
    digest, media_type, size = item.get("digest"), item.get("mediaType", ""), item.get("size", 0)
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ManifestError(f"{where} has no sha256 digest")
    if not isinstance(size, int) or size < 0:
        raise ManifestError(f"{where} has a bad size")
    platform = None
    raw_platform = item.get("platform")
    if isinstance(raw_platform, dict):
        variant = raw_platform.get("variant")
        platform = Platform(
            os=str(raw_platform.get("os", "")),
            architecture=str(raw_platform.get("architecture", "")),
            variant=str(variant) if variant else None,
        )
    return Descriptor(digest, str(media_type), size, platform)


def config_of(manifest: Manifest) -> Descriptor:
    """An image manifest's config blob."""
    if manifest.is_index:
        raise ManifestError("an index has no config")
    return _descriptor(manifest.document().get("config"), "config")


def layers_of(manifest: Manifest) -> list[Descriptor]:
    """An image manifest's layers, in order."""
    if manifest.is_index:
        raise ManifestError("an index has no layers")
    layers = manifest.document().get("layers", [])
    if not isinstance(layers, list):
        raise ManifestError("layers is not a list")
    return [_descriptor(layer, f"layer {index}") for index, layer in enumerate(layers)]


def blobs_of(manifest: Manifest) -> list[Descriptor]:
    """Every blob an image manifest needs: its config, then its layers (a digest once)."""
    seen: set[str] = set()
    out = []
    for blob in [config_of(manifest), *layers_of(manifest)]:
        if blob.digest not in seen:
            seen.add(blob.digest)
            out.append(blob)
    return out


def children_of(manifest: Manifest) -> list[Descriptor]:
    """An index's or manifest list's child manifests, with their platforms."""
    if not manifest.is_index:
        raise ManifestError("an image manifest has no child manifests")
    children = manifest.document().get("manifests", [])
    if not isinstance(children, list):
        raise ManifestError("manifests is not a list")
    return [_descriptor(child, f"manifest {index}") for index, child in enumerate(children)]
