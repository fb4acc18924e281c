"""Copying an image (or an index and all its platforms) between tags, repositories and registries.

The copy is byte-exact: the manifests are PUT as the source served them, so the target's digest
is the source's.  What moves depends on where the copy goes:

* same registry, same repository: only the manifest PUT under the new tag;
* same registry (same base URL), another repository: each blob is mounted (no bytes move), and
  copied as a stream only where the registry refuses the mount;
* another registry: each blob the target lacks (HEAD) is streamed from the source straight into
  the target in :data:`~workers.registry.client.CHUNK_SIZE` chunks — constant memory, no disk.

For an index every child manifest is copied first (its blobs, then the manifest by digest), then
the index under the tag, so the target never holds an index whose children are missing.  A
manifest's blobs go :data:`PARALLEL_BLOBS` at a time: each one waits on two registries (fixed
round trips, reading the source, the target's writes), and the waits overlap; memory stays a few
chunks per blob in flight.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from workers.registry.client import CHUNK_SIZE, RegistryClient
from workers.registry.errors import ServerError
from workers.registry.manifests import Descriptor, Manifest, blobs_of, children_of

log = logging.getLogger(__name__)

PARALLEL_BLOBS = 4
"""Blobs of one manifest copied at once (the client's connection pool holds 16)."""

MAX_DEPTH = 2
"""An index of indexes is followed this deep (OCI allows nesting; nobody nests further)."""


@dataclass
class CopyResult:
    """What a copy did: the digest and type under the target tag, and counts for every step."""

    digest: str = ""
    media_type: str = ""
    blobs_mounted: int = 0
    blobs_uploaded: int = 0
    blobs_skipped: int = 0
    bytes_uploaded: int = 0
    manifests_put: int = 0


class _Copy:
    def __init__(self, source: RegistryClient, source_repo: str, target: RegistryClient, target_repo: str,
                 chunk_size: int) -> None:
        self.source, self.source_repo = source, source_repo
        self.target, self.target_repo = target, target_repo
        self.same_registry = source.base_url == target.base_url
        self.chunk_size = chunk_size
        self.result = CopyResult()
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def manifest(self, manifest: Manifest, reference: str, depth: int = 0) -> str:
        """Copy what ``manifest`` refers to, then PUT it under ``reference``."""
        if manifest.is_index:
            if depth >= MAX_DEPTH:
                raise ServerError("the image is an index nested deeper than regops copies")
            for child in children_of(manifest):
                if child.digest in self._done:
                    continue
                child_manifest = self.source.manifest(self.source_repo, child.digest)
                self.manifest(child_manifest, child.digest, depth + 1)
                self._done.add(child.digest)
        else:
            blobs = blobs_of(manifest)
            if len(blobs) > 1:
                with ThreadPoolExecutor(min(PARALLEL_BLOBS, len(blobs)), thread_name_prefix="copy") as pool:
                    list(pool.map(self.blob, blobs))  # the first failure is raised once all have stopped
            else:
                for blob in blobs:
                    self.blob(blob)
        digest = self.target.put_manifest(self.target_repo, reference, manifest)
        self.result.manifests_put += 1
        return digest

    def blob(self, blob: Descriptor) -> None:
        with self._lock:
            if blob.digest in self._done:
                return
            self._done.add(blob.digest)
        if self.same_registry:
            if self.target.mount_blob(self.target_repo, blob.digest, self.source_repo):
                self._count(mounted=1)
                return
            log.info("the registry refused to mount %s into %s; copying it", blob.digest, self.target_repo)
        elif self.target.has_blob(self.target_repo, blob.digest):
            self._count(skipped=1)
            return
        with self.source.open_blob(self.source_repo, blob.digest, self.chunk_size) as chunks:
            sent = self.target.upload_blob(self.target_repo, blob.digest, chunks, size=blob.size)
        self._count(uploaded=1, sent=sent)

    def _count(self, *, mounted: int = 0, skipped: int = 0, uploaded: int = 0, sent: int = 0) -> None:
        with self._lock:
            self.result.blobs_mounted += mounted
            self.result.blobs_skipped += skipped
            self.result.blobs_uploaded += uploaded
            self.result.bytes_uploaded += sent


def copy_image(
    source_client: RegistryClient,
    source_repo: str,
    source_ref: str,
    target_client: RegistryClient,
    target_repo: str,
    target_tag: str,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> CopyResult:
    """Copy ``source_repo:source_ref`` (a tag or a digest) to ``target_repo:target_tag``, byte-exact."""
    manifest = source_client.manifest(source_repo, source_ref)
    copy = _Copy(source_client, source_repo, target_client, target_repo, chunk_size)
    if copy.same_registry and source_repo == target_repo:
        copy.result.digest = target_client.put_manifest(target_repo, target_tag, manifest)
        copy.result.manifests_put = 1
    else:
        copy.result.digest = copy.manifest(manifest, target_tag)
    copy.result.media_type = manifest.media_type
    log.info(
        "copied %s:%s to %s:%s (%s): %d mounted, %d uploaded (%d bytes), %d already there, %d manifests",
        source_repo, source_ref, target_repo, target_tag, copy.result.digest, copy.result.blobs_mounted,
        copy.result.blobs_uploaded, copy.result.bytes_uploaded, copy.result.blobs_skipped, copy.result.manifests_put,
    )  # fmt: skip
    return copy.result
