"""Authentication to a registry: Basic, or Bearer tokens from the registry's token service.

A client does not know in advance what a registry wants: its first call goes out without
credentials, and the ``401`` answer's ``WWW-Authenticate`` challenge says (Distribution's
htpasswd: ``Basic realm=…``; Docker Hub, Harbor, GitLab, Distribution's ``auth: token``:
``Bearer realm=…,service=…,scope=…``).  From then on every call carries credentials:

* Basic: the username and password, on every call.
* Bearer: a token for the call's *scope set* (``repository:NAME:pull`` for reads,
  ``repository:NAME:pull,push`` for writes, both a pull on the source and a push on the target
  for a cross-repository mount), got with a GET of the realm (``service`` and one ``scope``
  parameter per scope) with Basic credentials, and cached per scope set until ``expires_in``.

A ``401`` to a call that carried credentials gets one more try with a fresh challenge (a token
may have expired or lack a scope the challenge names); a second ``401`` is the caller's to
report.  The password stays a :class:`~workers.kernel.secrets.Secret` until the moment a header
is made; tokens and headers are never logged.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from workers.kernel.secrets import Secret
from workers.registry.errors import AuthFailed, from_response, from_transport

log = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 60
"""Seconds a token lives when the token service does not say (the token spec's minimum)."""
EXPIRY_MARGIN = 5.0
"""A token is renewed this many seconds before it expires, so it never expires in flight."""
MAX_TOKEN_ANSWER = 1024 * 1024

_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def delete(repository: str) -> str:
    return f"repository:{repository}:delete"


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: the scheme (lower case) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def scopes(self) -> frozenset[str]:
        scope = self.params.get("scope", "")
        return frozenset(scope.split(" ")) - {""}


def parse_challenge(header: str | None) -> Challenge | None:
    """``Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push"`` → Challenge."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if not match or match.end() == position:
            break
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        position = match.end()
    return Challenge(scheme.lower(), params)


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """The credentials of one client: the scheme learnt from challenges, and the cached tokens."""

    def __init__(
        self,
        session: requests.Session,
        username: str,
        password: Secret,
        *,
        timeout: float | tuple[float, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._username = username
        self._password = password
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: dict[frozenset[str], _Token] = {}
        self.token_requests = 0
        """How many times a token was asked for (for tests and debugging; never the tokens)."""

    @property
    def scheme(self) -> str | None:
        """``basic``, ``bearer`` or None before the first challenge."""
        return self._challenge.scheme if self._challenge else None

    def header(self, scopes: Iterable[str]) -> str | None:
        """The Authorization value for a call needing ``scopes``; None while no challenge is known."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic()
        if challenge.scheme == "bearer":
            return f"Bearer {self._token(frozenset(scopes), challenge, fresh=False)}"
        return None

    def challenged(self, response: requests.Response, scopes: Iterable[str], *, sent: str | None) -> bool:
        """Learn from a ``401``; True if one more try with :meth:`header` may succeed.

        ``sent`` is the Authorization value the refused call carried (None if it carried none).
        """
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            log.warning("registry refused a call with a challenge regops cannot answer: %s",
                        challenge.scheme if challenge else "(none)")
            return False
        with self._lock:
            self._challenge = challenge
        if challenge.scheme == "basic":
            return sent is None or not sent.startswith("Basic ")
        if challenge.params.get("error") == "insufficient_scope" and sent is not None and sent.startswith("Bearer "):
            # A token we just got for these very scopes lacks one: a fresh one will not have it either.
            wanted = frozenset(scopes)
            if challenge.scopes <= wanted:
                return False
        key = frozenset(scopes)
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and sent != f"Bearer {cached.value}" and self._clock() < cached.expires:
                return True  # another thread has got a token since this call was sent
        self._token(key | challenge.scopes, challenge, fresh=True, key=key)
        return True

    def _basic(self) -> str:
        pair = f"{self._username}:{self._password.reveal()}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def _token(
        self, scopes: frozenset[str], challenge: Challenge, *, fresh: bool, key: frozenset[str] | None = None
    ) -> str:
        key = scopes if key is None else key
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and not fresh and self._clock() < cached.expires:
                return cached.value
            token = self._fetch(scopes, challenge)
            self._tokens[key] = token
            return token.value

    def _fetch(self, scopes: frozenset[str], challenge: Challenge) -> _Token:
        realm = challenge.params.get("realm")
        if not realm:
            log.warning("registry's Bearer challenge names no realm")
            raise AuthFailed()
        params: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        params += [("scope", scope) for scope in sorted(scopes)]
        headers = {"Authorization": self._basic()} if self._username else {}
        self.token_requests += 1
        try:
            response = self._session.get(realm, params=params, headers=headers, timeout=self._timeout, stream=True)
        except requests.RequestException as exc:
            raise from_transport(exc, "GET", realm) from None
        with response:
            if response.status_code in (401, 403):
                log.warning("the token service refused the credentials (HTTP %s)", response.status_code)
                raise AuthFailed()
            if response.status_code != 200:
                raise from_response(response, "token")
            body = _json(response)
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            log.warning("the token service's answer holds no token")
            raise AuthFailed()
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else DEFAULT_EXPIRES_IN
        return _Token(value, self._clock() + max(lifetime - EXPIRY_MARGIN, 1.0))


def _json(response: requests.Response) -> Any:
    """The JSON of a streamed answer, read up to :data:`MAX_TOKEN_ANSWER` bytes."""
    try:
        return json.loads(response.raw.read(MAX_TOKEN_ANSWER, decode_content=True) or b"")
    except (ValueError, OSError):
        log.warning("the token service's answer is not JSON")
        raise AuthFailed() from None
