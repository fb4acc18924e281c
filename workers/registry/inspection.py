"""What an image in the registry is: digest, type, sizes, layers, platforms, creation time and labels.

Read from the registry alone (manifests and image configs; no layer is downloaded).  For an index
(or manifest list) every platform image is inspected, config included; the index's own
``created`` and ``labels`` are those of its first platform that is a real one (attestation
manifests, ``unknown/unknown``, are skipped), and its ``size`` and ``layers`` count every distinct
blob of all its platforms once (what the registry stores for it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workers.registry.errors import ServerError
from workers.registry.manifests import INDEX_TYPES, Manifest, Platform, blobs_of, children_of, config_of, layers_of

if TYPE_CHECKING:
    from workers.registry.client import RegistryClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageDetails:
    """One image manifest: its compressed size (config + layers), layer count, config's created and labels."""

    digest: str
    media_type: str
    size: int
    layers: int
    created: str | None
    labels: dict[str, str]
    platform: Platform | None = None


@dataclass(frozen=True)
class Inspection:
    """An image or an index as the registry holds it; ``platforms`` is empty for a single image."""

    repository: str
    reference: str
    digest: str
    media_type: str
    size: int
    layers: int
    created: str | None
    labels: dict[str, str]
    platforms: tuple[ImageDetails, ...] = field(default=())

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _config(client: RegistryClient, repository: str, manifest: Manifest) -> tuple[str | None, dict[str, str]]:
    descriptor = config_of(manifest)
    try:
        document: Any = json.loads(client.read_blob(repository, descriptor.digest))
    except ValueError:
        raise ServerError("an image config in the registry is not JSON") from None
    if not isinstance(document, dict):
        return None, {}
    created = document.get("created")
    config = document.get("config")
    labels = config.get("Labels") if isinstance(config, dict) else None
    return (
        str(created) if created else None,
        {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def image_details(client: RegistryClient, repository: str, manifest: Manifest,
                  platform: Platform | None = None) -> ImageDetails:
    created, labels = _config(client, repository, manifest)
    size = sum(blob.size for blob in blobs_of(manifest))
    return ImageDetails(manifest.digest, manifest.media_type, size, len(layers_of(manifest)), created, labels,
                        platform)


def _is_real(details: ImageDetails) -> bool:
    return details.platform is None or details.platform.os not in ("", "unknown")


def inspect_image(client: RegistryClient, repository: str, reference: str) -> Inspection:
    """Inspect ``repository:reference`` (a tag or a digest)."""
    manifest = client.manifest(repository, reference)
    if not manifest.is_index:
        image = image_details(client, repository, manifest)
        return Inspection(repository, reference, image.digest, image.media_type, image.size, image.layers,
                          image.created, image.labels)
    platforms = []
    blobs: dict[str, int] = {}
    layer_digests: set[str] = set()
    for child in children_of(manifest):
        child_manifest = client.manifest(repository, child.digest)
        if child_manifest.is_index:
            log.info("index %s holds a nested index %s; not inspected", manifest.digest, child.digest)
            continue
        platforms.append(image_details(client, repository, child_manifest, child.platform))
        blobs.update((blob.digest, blob.size) for blob in blobs_of(child_manifest))
        layer_digests.update(layer.digest for layer in layers_of(child_manifest))
    first = next((p for p in platforms if _is_real(p)), platforms[0] if platforms else None)
    return Inspection(
        repository, reference, manifest.digest, manifest.media_type, sum(blobs.values()), len(layer_digests),
        first.created if first else None, dict(first.labels) if first else {}, tuple(platforms),
    )
