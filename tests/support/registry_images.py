"""Images assembled in a registry through its HTTP API: random blobs, configs, manifests, indexes.

No Docker engine and no regops code: plain ``requests`` calls, so that tests of regops' registry
client check it against something it did not write.  Every manifest is written with an unusual
JSON layout (indented, keys in an odd order), so a copy that re-encoded the JSON would change the
digest.  Each image gets fresh random layers (or ``seed``-determined ones, to share layers).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Self

import requests

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}, {OCI_MANIFEST}, {OCI_INDEX}"

_CONFIG_TYPE = {DOCKER_MANIFEST: "application/vnd.docker.container.image.v1+json",
                OCI_MANIFEST: "application/vnd.oci.image.config.v1+json"}
_LAYER_TYPE = {DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip",
               OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip"}
_INDEX_OF = {DOCKER_MANIFEST: DOCKER_MANIFEST_LIST, OCI_MANIFEST: OCI_INDEX}

Authorizer = Callable[[str], str]
"""The Authorization header value for pushing to (and reading) a repository."""


def basic(username: str, password: str) -> Authorizer:
    header = requests.auth._basic_auth_str(username, password)
    return lambda repository: header


def bearer(issue: Callable[[list[str]], str]) -> Authorizer:
    """Tokens from a token service's ``issue`` (tests/support/token_auth.py), all actions on the repository."""
    return lambda repository: f"Bearer {issue([f'repository:{repository}:pull,push,delete'])}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    media_type: str = "application/octet-stream"

    def descriptor(self) -> dict[str, object]:
        # An odd key order on purpose (see the module docstring).
        return {"size": self.size, "digest": self.digest, "mediaType": self.media_type}


@dataclass(frozen=True)
class Image:
    """An image manifest pushed to ``repository`` (under ``tag``, or by digest only when ``tag`` is None)."""

    repository: str
    tag: str | None
    media_type: str
    manifest: bytes
    config: Blob
    layers: tuple[Blob, ...]
    created: str
    labels: dict[str, str]
    platform: tuple[str, str, str | None]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def size(self) -> int:
        """Compressed size: config plus layers."""
        return sum(blob.size for blob in self.blobs)


@dataclass(frozen=True)
class Index:
    """An OCI index or Docker manifest list of :attr:`images`, pushed under ``tag``."""

    repository: str
    tag: str
    media_type: str
    manifest: bytes
    images: tuple[Image, ...] = field(default=())

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return tuple({blob.digest: blob for image in self.images for blob in image.blobs}.values())


class ImageWriter:
    """Pushes blobs and manifests to the registry at ``base_url`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, base_url: str, authorize: Authorizer) -> None:
        self.base_url = base_url.rstrip("/")
        self._authorize = authorize
        self._session = requests.Session()
        self._rng = random.Random()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, url: str, repository: str, ok: tuple[int, ...], **kwargs: object) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})  # type: ignore[call-overload]
        headers["Authorization"] = self._authorize(repository)
        response = self._session.request(method, url, headers=headers, timeout=(5, 120), **kwargs)  # type: ignore[arg-type]
        if response.status_code not in ok:
            raise AssertionError(f"{method} {url.split('?')[0]} answered {response.status_code}: {response.text[:500]}")
        return response

    def _start(self, repository: str) -> str:
        started = self._call("POST", f"{self.base_url}/v2/{repository}/blobs/uploads/", repository, (202,))
        return requests.compat.urljoin(self.base_url + "/", started.headers["Location"])

    def blob(self, repository: str, data: bytes, media_type: str = "application/octet-stream") -> Blob:
        """A blob pushed in one PUT."""
        digest = sha256(data)
        location = self._start(repository)
        self._call("PUT", location, repository, (201,), params={"digest": digest}, data=data,
                   headers={"Content-Type": "application/octet-stream"})
        return Blob(digest, len(data), media_type)

    def big_blob(self, repository: str, size: int, seed: int = 0, chunk: int = 1024 * 1024,
                 media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> Blob:
        """A blob of ``size`` pseudo-random bytes streamed up (chunked PATCH), never whole in memory."""
        hashed = hashlib.sha256()
        rng = random.Random(seed)

        def body() -> Iterator[bytes]:
            left = size
            while left > 0:
                part = rng.randbytes(min(chunk, left))
                hashed.update(part)
                left -= len(part)
                yield part

        location = self._start(repository)
        patched = self._call("PATCH", location, repository, (202,), data=body(),
                             headers={"Content-Type": "application/octet-stream"})
        location = requests.compat.urljoin(self.base_url + "/", patched.headers["Location"])
        digest = "sha256:" + hashed.hexdigest()
        self._call("PUT", location, repository, (201,), params={"digest": digest})
        return Blob(digest, size, media_type)

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        answer = self._call("PUT", f"{self.base_url}/v2/{repository}/manifests/{reference}", repository, (201,),
                            data=data, headers={"Content-Type": media_type})
        return str(answer.headers["Docker-Content-Digest"])

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str] | None:
        """(bytes, Content-Type, Docker-Content-Digest) as served; None if absent."""
        answer = self._call("GET", f"{self.base_url}/v2/{repository}/manifests/{reference}", repository, (200, 404),
                            headers={"Accept": ACCEPT})
        if answer.status_code == 404:
            return None
        return answer.content, answer.headers["Content-Type"], answer.headers["Docker-Content-Digest"]

    def has_blob(self, repository: str, digest: str) -> bool:
        answer = self._call("HEAD", f"{self.base_url}/v2/{repository}/blobs/{digest}", repository, (200, 404))
        return answer.status_code == 200

    def image(
        self,
        repository: str,
        tag: str | None = "1.0",
        *,
        media_type: str = OCI_MANIFEST,
        layers: int = 2,
        layer_size: int = 2048,
        labels: dict[str, str] | None = None,
        created: str = "2026-01-02T03:04:05Z",
        platform: tuple[str, str, str | None] = ("linux", "amd64", None),
        shared_layers: tuple[Blob, ...] = (),
    ) -> Image:
        """An image with ``layers`` fresh random layers (after ``shared_layers``, already in the repository)."""
        os_name, architecture, variant = platform
        layer_blobs = list(shared_layers)
        for _ in range(layers):
            layer_blobs.append(self.blob(repository, self._rng.randbytes(layer_size), _LAYER_TYPE[media_type]))
        config_document: dict[str, object] = {
            "created": created, "architecture": architecture, "os": os_name,
            "config": {"Labels": dict(labels or {}), "Env": ["PATH=/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [blob.digest for blob in layer_blobs]},
        }  # fmt: skip
        if variant:
            config_document["variant"] = variant
        config = self.blob(repository, json.dumps(config_document, indent=1).encode(), _CONFIG_TYPE[media_type])
        document = {
            "schemaVersion": 2, "mediaType": media_type, "config": config.descriptor(),
            "layers": [blob.descriptor() for blob in layer_blobs],
        }  # fmt: skip
        data = json.dumps(document, indent=3).encode() + b"\n"
        self.put_manifest(repository, tag or sha256(data), data, media_type)
        return Image(repository, tag, media_type, data, config, tuple(layer_blobs), created, dict(labels or {}),
                     platform)

    def index(
        self,
        repository: str,
        tag: str = "1.0",
        *,
        media_type: str = OCI_INDEX,
        platforms: tuple[tuple[str, str, str | None], ...] = (("linux", "amd64", None), ("linux", "arm64", "v8")),
        labels: dict[str, str] | None = None,
    ) -> Index:
        """An index (or manifest list) of one small image per platform, each pushed by digest first."""
        child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
        images = []
        for number, platform in enumerate(platforms):
            platform_labels = {**(labels or {}), "platform": "/".join(p for p in platform if p)}
            images.append(self.image(repository, None, media_type=child_type, layers=1 + number,
                                     labels=platform_labels, platform=platform,
                                     created=f"2026-01-0{number + 1}T00:00:00Z"))
        manifests = []
        for image in images:
            os_name, architecture, variant = image.platform
            platform_document = {"architecture": architecture, "os": os_name, **({"variant": variant} if variant else {})}
            manifests.append({"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest),
                              "platform": platform_document})
        document = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
        data = json.dumps(document, indent=2, sort_keys=True).encode()
        self.put_manifest(repository, tag, data, media_type)
        return Index(repository, tag, media_type, data, tuple(images))

    def tags(self, repository: str, manifest: bytes, media_type: str, tags: list[str], workers: int = 8) -> None:
        """Put one manifest under many tags (threads: a thousand tags in a few seconds)."""
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda tag: self.put_manifest(repository, tag, manifest, media_type), tags))
