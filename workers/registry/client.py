"""A client of one registry's OCI Distribution API: tags, manifests and blobs over HTTP.

Why ``requests``: it is already on every worker (the docker SDK is built on it), it streams
bodies both ways (``stream=True`` + ``iter_content`` to read a layer, a generator as the body
of a chunked upload), and a :class:`requests.Session` per client keeps connections alive in a
pool sized for the concurrent HEADs of :meth:`RegistryClient.digests`.  The Docker engine is
not involved: a promote or a rollback never pulls an image onto a host.

Every call has a connect and a read timeout.  No call is retried here except once after a
``401`` with a fresh challenge (the registry refused it before doing anything); a failure is a
:class:`~workers.registry.errors.RegistryError`, retryable where trying later may help, and the
job machinery decides whether to run the job again.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import Self

import requests

from workers.credentials import RegistryCredentials
from workers.kernel.secrets import Secret
from workers.registry import auth
from workers.registry.auth import Authenticator
from workers.registry.errors import (
    BlobUnknown,
    DigestMismatch,
    NotFound,
    RegistryError,
    ServerError,
    from_response,
    from_transport,
)
from workers.registry.inspection import Inspection, inspect_image
from workers.registry.manifests import ACCEPT, Manifest, compute_digest, is_digest, media_type_of
from workers.registry.transport import HeaderAuth, RegistryAdapter, new_session, with_query
from workers.registry.urls import registry_base_url

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (10.0, 60.0)
"""Seconds to connect, and to wait for each read of an answer."""
CHUNK_SIZE = 1024 * 1024
"""A streamed blob goes through memory one chunk at a time."""
MAX_MANIFEST = 4 * 1024 * 1024
"""Distribution's own limit on a manifest's size."""
MAX_CONFIG = 16 * 1024 * 1024
"""The largest image config :meth:`RegistryClient.read_blob` reads by default."""
MAX_PAGES = 10_000
POOL_SIZE = 16
USER_AGENT = "regops"


def _what(repository: str, reference: str) -> str:
    return f"{repository}@{reference}" if is_digest(reference) else f"{repository}:{reference}"


class RegistryClient:
    """One registry at ``base_url`` (``https://host:port``) with one login.

    Thread-safe for concurrent calls (the token cache is locked; the session's pool holds
    ``pool_size`` connections).  Close it, or use it as a context manager.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: Secret,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._owns_session = session is None
        if session is None:
            session = new_session(self.base_url, pool_size, USER_AGENT)
        self.session = session
        self.auth = Authenticator(session, username, password, timeout=timeout)
        self._origin = urllib.parse.urlsplit(self.base_url)[:2]

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the one way out ---------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base_url}/v2/{path}"

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: Collection[str],
        what: str,
        ok: Collection[int] = (200,),
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | Iterable[bytes] | None = None,
        stream: bool = False,
        replayable: bool = True,
    ) -> requests.Response:
        """Send one call with the credentials its ``scopes`` need; the answer if its status is in ``ok``.

        A ``401`` is tried once more with a fresh challenge when the body can be sent again
        (``replayable``); any other status raises the error it means (``what`` names the object).
        """
        response = self._send(method, url, scopes, params, headers, data, stream)
        if response.status_code == 401 and replayable:
            sent = response.request.headers.get("Authorization") if response.request is not None else None
            if self.auth.challenged(response, scopes, sent=sent if isinstance(sent, str) else None):
                response.close()
                response = self._send(method, url, scopes, params, headers, data, stream)
        if response.status_code in ok:
            return response
        try:
            raise from_response(response, what, method=method)
        finally:
            response.close()

    def _send(
        self,
        method: str,
        url: str,
        scopes: Collection[str],
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        data: bytes | Iterable[bytes] | None,
        stream: bool,
    ) -> requests.Response:
        authorization = None
        # Credentials go only to this registry, never to a host a Location or Link points at.
        if urllib.parse.urlsplit(url)[:2] == self._origin:
            authorization = self.auth.header(scopes)
        try:
            return self.session.request(
                method, url, params=params, headers=headers, data=data, stream=stream, auth=HeaderAuth(authorization),
                timeout=self.timeout, allow_redirects=method in ("GET", "HEAD"),
            )  # fmt: skip
        except requests.RequestException as exc:
            raise from_transport(exc, method, url) from None

    def _location(self, response: requests.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise ServerError("the registry's answer to an upload has no Location")
        return urllib.parse.urljoin(self.base_url + "/", location)

    # -- the API root and tags ---------------------------------------------------------------

    def ping(self) -> None:
        """GET ``/v2/``: raises if the registry cannot be reached or refuses the credentials."""
        self.request("GET", self.url(""), scopes=(), what="the registry").close()

    def tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repository``, following ``Link: <…>; rel="next"`` page by page.

        ``page_size`` asks for ``n`` tags a page (a registry may ignore it: Distribution 2.8 answers
        with all tags at once).  The order is the registry's.
        """
        url: str | None = self.url(f"{repository}/tags/list")
        params = {"n": str(page_size)} if page_size else None
        tags: list[str] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            if url is None:
                return tags
            seen.add(url)
            with self.request("GET", url, scopes=[auth.pull(repository)], what=repository, params=params) as answer:
                try:
                    body = answer.json()
                except ValueError:
                    raise ServerError("the registry answered the tag list with something that is not JSON") from None
                page = body.get("tags") if isinstance(body, dict) else None
                tags.extend(str(tag) for tag in page or [])
                link = answer.links.get("next", {}).get("url")
            params = None  # the next link carries its own query
            url = urllib.parse.urljoin(self.base_url + "/", link) if link else None
            if url in seen:
                log.warning("the registry's tag list links back to a page already read; stopping there")
                return tags
        raise ServerError("the registry's tag list has too many pages")

    # -- manifests ---------------------------------------------------------------------------

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest exactly as served, its digest checked against the bytes."""
        what = _what(repository, reference)
        url = self.url(f"{repository}/manifests/{reference}")
        scopes = [auth.pull(repository)]
        with self.request("GET", url, scopes=scopes, what=what, headers={"Accept": ACCEPT}, stream=True) as answer:
            data = answer.raw.read(MAX_MANIFEST + 1, decode_content=True)
            served_digest = answer.headers.get("Docker-Content-Digest")
            content_type = answer.headers.get("Content-Type")
        if len(data) > MAX_MANIFEST:
            raise ServerError(f"the manifest of `{what}` is larger than {MAX_MANIFEST // (1024 * 1024)} MiB")
        digest = compute_digest(data)
        if (served_digest and served_digest != digest) or (is_digest(reference) and reference != digest):
            log.warning("manifest %s: served digest %s, computed %s", what, served_digest, digest)
            raise DigestMismatch(what)
        try:
            return Manifest(data, media_type_of(data, content_type))
        except ValueError:
            raise ServerError(f"the registry served `{what}` with a manifest regops cannot read") from None

    def head_manifest(self, repository: str, reference: str) -> str | None:
        """The digest ``reference`` points at (``Docker-Content-Digest``); None if there is none."""
        url = self.url(f"{repository}/manifests/{reference}")
        what = _what(repository, reference)
        headers = {"Accept": ACCEPT}
        quick = self._quick_head(url, [auth.pull(repository)], headers)
        if quick is not None:
            return quick or None
        with self.request("HEAD", url, scopes=[auth.pull(repository)], what=what, ok=(200, 404),
                          headers=headers) as answer:
            if answer.status_code == 404:
                return None
            digest = answer.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        return self.manifest(repository, reference).digest  # a registry that does not say: read it

    def _quick_head(self, url: str, scopes: Collection[str], headers: dict[str, str]) -> str | None:
        """A HEAD straight on the session's connection pool: the digest, "" for a 404, None to take the
        full path (a challenge, an error, a registry that sends no digest, a proxy in between).

        It costs half the CPU time of a call through requests, which is what lets a thousand HEADs
        finish in well under two seconds on a small machine.
        """
        adapter = self.session.get_adapter(url)
        if not isinstance(adapter, RegistryAdapter) or self.session.proxies or self.auth.scheme is None \
                or not hasattr(adapter, "get_connection_with_tls_context"):  # requests before 2.32.2
            return None
        sent = {**self.session.headers, **headers}  # type: ignore[dict-item]
        authorization = self.auth.header(scopes)
        if authorization:
            sent["Authorization"] = authorization
        status, digest = adapter.head(url, sent, self.timeout, self.session.verify, self.session.cert)
        if status == 404:
            return ""
        return digest if status == 200 and digest else None

    def digests(self, repository: str, tags: Iterable[str], workers: int = POOL_SIZE) -> dict[str, str]:
        """The digest of each tag, with up to ``workers`` HEADs at once; a tag gone meanwhile is left out."""
        pending = list(dict.fromkeys(tags))
        found: dict[str, str] = {}
        if not pending:
            return found
        # The first alone, so that the challenge is learnt (and a token got) once, not by every thread.
        first = self.head_manifest(repository, pending[0])
        if first is not None:
            found[pending[0]] = first
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="registry-head")
        try:
            for tag, digest in zip(pending[1:], pool.map(lambda t: self.head_manifest(repository, t), pending[1:]),
                                   strict=True):
                if digest is not None:
                    found[tag] = digest
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # after a failure, the HEADs not yet sent are not sent
        return found

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """PUT the manifest's exact bytes under its own media type; returns the digest the registry gives."""
        what = _what(repository, reference)
        url = self.url(f"{repository}/manifests/{reference}")
        headers = {"Content-Type": manifest.media_type}
        with self.request("PUT", url, scopes=[auth.push(repository)], what=what, ok=(201, 200, 202),
                          headers=headers, data=manifest.data) as answer:
            digest = answer.headers.get("Docker-Content-Digest") or manifest.digest
        if digest != manifest.digest:
            log.warning("manifest %s stored as %s, expected %s", what, digest, manifest.digest)
            raise DigestMismatch(what)
        return digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        """DELETE the manifest ``digest`` (and with it every tag pointing at it)."""
        url = self.url(f"{repository}/manifests/{digest}")
        self.request("DELETE", url, scopes=[auth.delete(repository)], what=_what(repository, digest),
                     ok=(202, 200, 204)).close()

    def inspect(self, repository: str, reference: str) -> Inspection:
        """Digest, type, sizes, layers, platforms, created and labels (see :mod:`workers.registry.inspection`)."""
        return inspect_image(self, repository, reference)

    # -- blobs -------------------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        url = self.url(f"{repository}/blobs/{digest}")
        with self.request("HEAD", url, scopes=[auth.pull(repository)], what=f"{repository}@{digest}",
                          ok=(200, 404)) as answer:
            return answer.status_code == 200

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Ask the registry to link ``digest`` from ``from_repository`` into ``repository`` (no bytes sent).

        True if mounted (201).  A registry that will not mount answers 202 with an upload session
        instead; that session is cancelled and False returned, for the caller to copy the bytes.
        """
        url = self.url(f"{repository}/blobs/uploads/")
        scopes = [auth.push(repository), auth.pull(from_repository)]
        params = {"mount": digest, "from": from_repository}
        with self.request("POST", url, scopes=scopes, what=f"{repository}@{digest}", ok=(201, 202),
                          params=params) as answer:
            if answer.status_code == 201:
                return True
            location = self._location(answer)
        self._cancel_upload(repository, location)
        return False

    def upload_blob(self, repository: str, digest: str, chunks: Iterable[bytes], size: int | None = None) -> int:
        """Stream a blob up: POST to start, one PATCH fed by ``chunks``, then PUT ``?digest=``.

        Only one chunk is in memory at a time.  With ``size`` (the descriptor's) the PATCH says its
        ``Content-Length`` and the chunks go out as they are; without, it is sent chunked (each chunk
        re-framed, which costs a copy of it).  The bytes are hashed on the way and the upload is
        cancelled if they are not ``digest`` (or not ``size`` long).  Returns the number of bytes sent.
        """
        what = f"{repository}@{digest}"
        scopes = [auth.push(repository)]
        with self.request("POST", self.url(f"{repository}/blobs/uploads/"), scopes=scopes, what=what,
                          ok=(202,)) as started:
            location = self._location(started)
        hashed = hashlib.sha256()
        sent = 0

        def body() -> Iterator[bytes]:
            nonlocal sent
            for chunk in chunks:
                if chunk:
                    if size is not None and sent + len(chunk) > size:
                        raise DigestMismatch(what)  # longer than its descriptor says: not that blob
                    hashed.update(chunk)
                    sent += len(chunk)
                    yield chunk

        try:
            with self.request("PATCH", location, scopes=scopes, what=what, ok=(202, 204),
                              headers={"Content-Type": "application/octet-stream"},
                              data=body() if size is None else _Sized(body(), size),
                              replayable=False) as patched:
                location = self._location(patched)
            if "sha256:" + hashed.hexdigest() != digest or (size is not None and sent != size):
                log.warning("blob %s: the bytes streamed hash to sha256:%s", what, hashed.hexdigest())
                raise DigestMismatch(what)
            self.request("PUT", with_query(location, digest=digest), scopes=scopes, what=what,
                         ok=(201, 204)).close()
        except BaseException:
            self._cancel_upload(repository, location)
            raise
        return sent

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload a small blob in one PUT (a config, say); returns its digest."""
        digest = compute_digest(data)
        what = f"{repository}@{digest}"
        scopes = [auth.push(repository)]
        with self.request("POST", self.url(f"{repository}/blobs/uploads/"), scopes=scopes, what=what,
                          ok=(202,)) as started:
            location = self._location(started)
        self.request("PUT", with_query(location, digest=digest), scopes=scopes, what=what, ok=(201, 204),
                     headers={"Content-Type": "application/octet-stream"}, data=data).close()
        return digest

    @contextmanager
    def open_blob(self, repository: str, digest: str, chunk_size: int = CHUNK_SIZE) -> Iterator[Iterator[bytes]]:
        """The blob's bytes as a stream of chunks (``with client.open_blob(...) as chunks``).

        The answer is closed when the block ends, read to the end or not.  The caller checks the
        digest (:meth:`upload_blob` does, and the target registry does again).
        """
        url = self.url(f"{repository}/blobs/{digest}")
        try:
            answer = self.request("GET", url, scopes=[auth.pull(repository)], what=f"{repository}@{digest}",
                                  stream=True)
        except NotFound:
            raise BlobUnknown(repository, digest) from None
        try:
            yield self._chunks(answer, url, chunk_size)
        finally:
            answer.close()

    @staticmethod
    def _chunks(answer: requests.Response, url: str, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from answer.iter_content(chunk_size)
        except requests.RequestException as exc:
            raise from_transport(exc, "GET", url) from None

    def read_blob(self, repository: str, digest: str, limit: int = MAX_CONFIG) -> bytes:
        """A small blob (an image config) whole, its digest checked."""
        what = f"{repository}@{digest}"
        parts: list[bytes] = []
        size = 0
        with self.open_blob(repository, digest, chunk_size=64 * 1024) as chunks:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise ServerError(f"blob `{what}` is larger than regops reads whole")
                parts.append(chunk)
        data = b"".join(parts)
        if compute_digest(data) != digest:
            raise DigestMismatch(what)
        return data

    def _cancel_upload(self, repository: str, location: str) -> None:
        """DELETE an upload session, best effort (the registry purges abandoned ones anyway)."""
        try:
            self.request("DELETE", location, scopes=[auth.push(repository)], what=repository,
                         ok=(204, 200, 202, 404)).close()
        except RegistryError as exc:
            log.info("could not cancel an upload to %s: %s", repository, exc.reason)


class _Sized:
    """An iterable body of a known length: requests then sends ``Content-Length``, not chunks."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._size = size

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def __len__(self) -> int:
        return self._size


def client_for(credentials: RegistryCredentials, *, insecure: bool | None = None,
               timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> RegistryClient:
    """A client of the registry ``credentials`` name, logged in as they say (at its ``api_url`` if set)."""
    base_url = credentials.api_url or registry_base_url(credentials.server, insecure)
    return RegistryClient(base_url, credentials.username,
                          credentials.password, timeout=timeout)
