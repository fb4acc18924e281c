"""Docker Engine calls (tag, login, push, pull) with every failure translated into a WorkerError.

docker-py reports registry failures inside the push/pull progress stream with HTTP
200 and raises nothing, so every stream line is checked here.  Engine and registry
messages are logged (they never hold a password: credentials travel in the
X-Registry-Auth header, not in URLs) and replaced by user-safe sentences.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import docker
import docker.errors
import requests
import urllib3.exceptions
from docker.auth import INDEX_NAME, resolve_repository_name
from docker.utils import parse_repository_tag

from workers.credentials import RegistryCredentials
from workers.errors import WorkerError
from workers.kernel.jobs import FailureReason
from workers.kernel.references import is_registry_host

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Mapping[str, Any]], None]

_UNREACHABLE = (
    "connection refused",
    "dial tcp",
    "no such host",
    "i/o timeout",
    "connection reset",
    "network is unreachable",
    "no route to host",
    "tls handshake timeout",
    "server misbehaving",
    "broken pipe",
    "deadline exceeded",
    "timeout exceeded",
    ": eof",
)
# The registry answered 5xx (overloaded, restarting, a proxy in front of it failing):
# the same request may well succeed a little later.
_SERVER_ERROR = re.compile(r"\b50[0-4]\b|internal server error|bad gateway|service unavailable|gateway timeout")
_UNAUTHORIZED = ("unauthorized", "authentication required", "no basic auth credentials", "incorrect username")
_NOT_FOUND = ("manifest unknown", "not found")


def split_reference(reference: str) -> tuple[str, str]:
    """``host:port/ns/name:tag`` → (``host:port/ns/name``, ``tag``); a tag is required."""
    if "@" in reference:
        raise WorkerError(
            FailureReason.INVALID_REFERENCE, f"image reference {reference} must use a tag, not a digest"
        )
    repository, tag_ = parse_repository_tag(reference)  # a `:` before the last `/` is a port, not a tag
    if not tag_:
        raise WorkerError(FailureReason.INVALID_REFERENCE, f"image reference {reference} has no tag")
    return repository, tag_


def registry_of(reference: str) -> str | None:
    """The registry host[:port] the engine contacts for ``reference``, or None for a Docker Hub name."""
    repository, _ = parse_repository_tag(reference)
    try:
        index, _remote = resolve_repository_name(repository)
    except docker.errors.InvalidRepository as exc:
        raise WorkerError(
            FailureReason.INVALID_REFERENCE, f"image reference {reference} does not name a valid registry"
        ) from exc
    if index != INDEX_NAME:
        return index
    # docker-py takes only `.`, `:` and localhost for a host and maps index.docker.io to docker.io;
    # the engine, which is what sends the credentials, also takes an upper-case component for one
    # and contacts the host as written.
    first, slash, _ = repository.partition("/")
    return first if slash and is_registry_host(first) else None


def connect(factory: Callable[[], docker.APIClient]) -> docker.APIClient:
    """A client from ``factory``; docker-py asks the engine its API version right away,
    so an engine that is down or restarting fails here, as ENGINE_UNREACHABLE."""
    with _engine_call("connect", "the Docker engine"):
        api = factory()
    return api


def tag(api: docker.APIClient, source: str, reference: str) -> None:
    """Give the local image ``source`` (reference or id) the name ``reference``."""
    repository, tag_ = split_reference(reference)
    with _engine_call("tag", reference, source=source):
        api.tag(image=source, repository=repository, tag=tag_, force=True)
    log.info("tagged %s as %s", source, reference)


def login(api: docker.APIClient, creds: RegistryCredentials) -> None:
    """Check the credentials against the registry through the engine (nothing is stored there)."""
    with _engine_call("login", creds.server, server=creds.server):
        api.login(creds.username, creds.password.reveal(), registry=creds.server, reauth=True)
    log.info("logged in to %s as %s", creds.server, creds.username)


def push(
    api: docker.APIClient,
    reference: str,
    creds: RegistryCredentials,
    on_progress: ProgressCallback | None = None,
) -> str:
    """Push exactly ``reference`` (never every tag of the repository); returns the manifest digest."""
    repository, tag_ = split_reference(reference)
    _require_same_registry(reference, creds)
    with _engine_call("push", reference, server=creds.server):
        stream = api.push(repository, tag=tag_, auth_config=_auth_config(creds), stream=True, decode=True)
        digest = _follow(stream, "push", reference, creds.server, lambda line: push_digest(line, tag_),
                         on_progress)
    if not digest:
        log.warning("push of %s ended without a digest", reference)
        raise WorkerError(FailureReason.REGISTRY_ERROR, f"the push of {reference} ended without a digest")
    log.info("pushed %s (%s)", reference, digest)
    return digest


def pull(
    api: docker.APIClient,
    reference: str,
    creds: RegistryCredentials,
    on_progress: ProgressCallback | None = None,
) -> str:
    """Pull exactly ``reference`` onto the engine; returns the manifest digest."""
    repository, tag_ = split_reference(reference)
    _require_same_registry(reference, creds)
    with _engine_call("pull", reference, server=creds.server):
        stream = api.pull(repository, tag=tag_, auth_config=_auth_config(creds), stream=True, decode=True)
        digest = _follow(stream, "pull", reference, creds.server, pull_digest, on_progress)
        if not digest:
            # Engines that omit the status line still record the digest on the image.
            digest = _repo_digest(api, reference, repository)
    if not digest:
        log.warning("pull of %s ended without a digest", reference)
        raise WorkerError(FailureReason.REGISTRY_ERROR, f"the pull of {reference} ended without a digest")
    log.info("pulled %s (%s)", reference, digest)
    return digest


def _follow(
    stream: Iterable[dict[str, Any]],
    action: str,
    reference: str,
    server: str,
    digest_of: Callable[[dict[str, Any]], str | None],
    on_progress: ProgressCallback | None,
) -> str | None:
    """Read a push/pull stream to its end, checking every line; returns the last digest seen."""
    digest: str | None = None
    for line in stream:
        check_line(line, action, reference, server)
        digest = digest_of(line) or digest
        if on_progress is not None:
            on_progress(line)
    return digest


def classify(message: str, action: str, subject: str, server: str | None = None) -> WorkerError:
    """An engine or registry error message → the WorkerError a user should see."""
    text = message.lower()
    where = f"registry {server}" if server else "the registry"
    if "does not exist locally" in text or "no such image" in text:
        return WorkerError(FailureReason.IMAGE_NOT_FOUND, f"local image {subject} not found")
    if any(s in text for s in _UNREACHABLE):
        return WorkerError(FailureReason.REGISTRY_UNREACHABLE, f"{where} is unreachable", retryable=True)
    if any(s in text for s in _UNAUTHORIZED):
        return WorkerError(FailureReason.AUTH_FAILED, f"{where} rejected the worker's credentials")
    if "denied" in text:
        return WorkerError(FailureReason.DENIED, f"{where} denied the {action} of {subject}")
    if action == "pull" and any(s in text for s in _NOT_FOUND):
        return WorkerError(FailureReason.IMAGE_NOT_FOUND, f"image {subject} not found in the registry")
    if _SERVER_ERROR.search(text):
        return WorkerError(
            FailureReason.REGISTRY_ERROR,
            f"{where} reported a server error during the {action} of {subject}",
            retryable=True,
        )
    return WorkerError(
        FailureReason.REGISTRY_ERROR, f"{where} reported an error during the {action} of {subject}"
    )


def _auth_config(creds: RegistryCredentials) -> dict[str, str]:
    return {"username": creds.username, "password": creds.password.reveal(), "serveraddress": creds.server}


def _require_same_registry(reference: str, creds: RegistryCredentials) -> None:
    # The engine sends X-Registry-Auth to whatever host the reference names: a
    # mismatch would hand this registry's password to another server.
    if registry_of(reference) != creds.server:
        raise WorkerError(
            FailureReason.INVALID_REFERENCE, f"image reference {reference} is not on registry {creds.server}"
        )


def check_line(line: Mapping[str, Any], action: str, reference: str, server: str | None = None) -> None:
    """Raise the WorkerError for a push/pull stream line that reports a failure (HTTP 200 regardless)."""
    if "error" not in line and "errorDetail" not in line:
        return
    detail = line.get("errorDetail")
    message = detail.get("message") if isinstance(detail, Mapping) else None
    message = str(message or line.get("error") or "unknown error")
    log.warning("%s of %s failed in the stream: %s", action, reference, message)
    raise classify(message, action, reference, server)


def push_digest(line: Mapping[str, Any], tag: str) -> str | None:
    """The manifest digest from a push stream's final ``aux`` line for ``tag``."""
    aux = line.get("aux")
    if isinstance(aux, Mapping) and aux.get("Tag") == tag:
        digest = aux.get("Digest")
        if isinstance(digest, str) and digest.startswith("sha256:"):
            return digest
    return None


def pull_digest(line: Mapping[str, Any]) -> str | None:
    """The manifest digest from a pull stream's ``Digest: sha256:...`` status line."""
    status = line.get("status")
    if isinstance(status, str) and status.startswith("Digest: sha256:"):
        return status.removeprefix("Digest: ").strip()
    return None


def local_digest(api: docker.APIClient, image: str, repository: str) -> str | None:
    """The manifest digest the local ``image`` has in ``repository`` (host/path; from its RepoDigests,
    which the engine records on a push or pull), or None when the engine knows none."""
    with _engine_call("inspect", image, source=image):
        return _repo_digest(api, image, repository)


def _repo_digest(api: docker.APIClient, reference: str, repository: str) -> str | None:
    for repo_digest in api.inspect_image(reference).get("RepoDigests") or []:
        name, _, digest = str(repo_digest).partition("@")
        if name == repository and digest:
            return digest
    return None


@contextmanager
def _engine_call(
    action: str, subject: str, *, source: str | None = None, server: str | None = None
) -> Iterator[None]:
    """Translate docker-py / requests exceptions raised inside the block at this edge."""
    try:
        yield
    except WorkerError:
        raise
    except docker.errors.ImageNotFound as exc:
        log.warning(
            "%s of %s: local image %s not found: %s", action, subject, source or subject, exc.explanation
        )
        raise WorkerError(
            FailureReason.IMAGE_NOT_FOUND, f"local image {source or subject} not found"
        ) from exc
    except docker.errors.APIError as exc:
        message = str(exc.explanation or exc)
        log.warning(
            "%s of %s: engine answered %s: %s", action, subject, exc.status_code, message, exc_info=True
        )
        if action == "tag" and exc.status_code == 404:
            raise WorkerError(
                FailureReason.IMAGE_NOT_FOUND, f"local image {source or subject} not found"
            ) from exc
        raise classify(message, action, subject, server) from exc
    except (
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        docker.errors.DockerException,
    ) as exc:
        # Includes a stream cut off half-way: the engine went away, not the registry.
        log.warning("%s of %s: Docker engine unreachable: %s", action, subject, exc, exc_info=True)
        raise WorkerError(FailureReason.ENGINE_UNREACHABLE, retryable=True) from exc
