"""Registry failures, translated at the edge into the reasons and sentences users already see.

Every HTTP or transport failure of a registry call becomes one :class:`RegistryError` (a
:class:`~workers.errors.WorkerError`): a :class:`~workers.kernel.jobs.FailureReason`, a user-safe
sentence and whether trying again later may help.  What the registry or the network said in detail
(status, error code, the registry's own message) goes to the log, never into the sentence; neither
ever holds a password, a token or an Authorization header.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import requests

from workers.errors import WorkerError
from workers.kernel.jobs import FAILURE_MESSAGES, FailureReason

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 4096
"""How much of an error answer is read to find the registry's error code."""


class RegistryError(WorkerError):
    """A registry call failed; ``user_message`` is safe to show as is."""


class AuthFailed(RegistryError):
    def __init__(self, user_message: str | None = None) -> None:
        super().__init__(FailureReason.AUTH_FAILED, user_message, retryable=False)


class Denied(RegistryError):
    def __init__(self, user_message: str | None = None) -> None:
        super().__init__(FailureReason.DENIED, user_message, retryable=False)


class Unreachable(RegistryError):
    def __init__(self, user_message: str | None = None) -> None:
        super().__init__(FailureReason.REGISTRY_UNREACHABLE, user_message, retryable=True)


class TimedOut(RegistryError):
    def __init__(self, user_message: str | None = None) -> None:
        super().__init__(FailureReason.TIMED_OUT, user_message or "the registry did not answer in time", retryable=True)


class NotFound(RegistryError):
    """A manifest, tag, repository or blob the registry does not have; ``what`` names it."""

    def __init__(self, what: str, user_message: str | None = None) -> None:
        self.what = what
        super().__init__(FailureReason.NOT_FOUND, user_message or f"`{what}` is not in the registry", retryable=False)


class BlobUnknown(NotFound):
    def __init__(self, repository: str, digest: str) -> None:
        super().__init__(f"{repository}@{digest}", f"blob `{short_digest(digest)}` is not in `{repository}`")


class DeleteDisabled(RegistryError):
    def __init__(self) -> None:
        super().__init__(FailureReason.DELETE_DISABLED, retryable=False)


class ServerError(RegistryError):
    """The registry answered with an error of its own (5xx and 429 are retryable)."""

    def __init__(self, user_message: str | None = None, *, retryable: bool = False) -> None:
        super().__init__(FailureReason.REGISTRY_ERROR, user_message, retryable=retryable)


class DigestMismatch(ServerError):
    """Bytes whose sha256 is not the digest they were served or asked for under."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the registry served `{what}` with a digest that does not match its content")


def short_digest(digest: str) -> str:
    """``sha256:0123456789ab`` — the first 12 hex digits, as people read digests."""
    algorithm, _, hexdigits = digest.partition(":")
    return f"{algorithm}:{hexdigits[:12]}" if hexdigits else digest[:19]


def error_codes(response: requests.Response) -> list[str]:
    """The Distribution error codes of an error answer (``MANIFEST_UNKNOWN``…); [] if it has none.

    Reads at most :data:`MAX_ERROR_BODY` bytes, so a streamed answer is never read whole.
    """
    try:
        raw = next(response.iter_content(MAX_ERROR_BODY), b"")
        body: Any = json.loads(raw or b"{}")
    except (ValueError, OSError, RuntimeError, requests.RequestException):
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")]


def from_response(response: requests.Response, what: str, *, method: str | None = None) -> RegistryError:
    """The error an unexpected answer means; ``what`` names the object for a not-found sentence.

    The status and codes are logged with the method and path (never headers, never a query that
    could carry a token).
    """
    status = response.status_code
    codes = error_codes(response)
    method = method or (response.request.method if response.request is not None else None) or "?"
    path = requests.utils.urlparse(response.url).path if response.url else "?"
    log.warning("registry answered %s %s with %s %s", method, path, status, ",".join(codes) or "(no error code)")
    if status == 401:
        # A token that is good but lacks the scope: the login may not do this (Distribution's token auth).
        if 'error="insufficient_scope"' in response.headers.get("WWW-Authenticate", ""):
            return Denied()
        return AuthFailed()
    if status == 403:
        return Denied()
    if status == 404:
        return NotFound(what)
    if status == 405 and method == "DELETE":
        return DeleteDisabled()
    if status == 429:
        return ServerError("the registry is busy (too many requests); try again later", retryable=True)
    if status >= 500:
        return ServerError(f"the registry failed (HTTP {status}); try again later", retryable=True)
    if "DIGEST_INVALID" in codes:
        return DigestMismatch(what)
    return ServerError(f"the registry refused the request for `{what}` (HTTP {status})")


def from_transport(exc: requests.RequestException, method: str, url: str) -> RegistryError:
    """The error a failed connection or a timeout means; the exception text is logged, not shown."""
    path = requests.utils.urlparse(url).path
    log.warning("registry call %s %s failed: %s", method, path, type(exc).__name__, exc_info=exc)
    if isinstance(exc, requests.ConnectTimeout):
        return Unreachable()
    if isinstance(exc, requests.Timeout):
        return TimedOut()
    if isinstance(exc, requests.ConnectionError):
        return Unreachable()
    return ServerError(FAILURE_MESSAGES[FailureReason.REGISTRY_ERROR.value], retryable=True)
