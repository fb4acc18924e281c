"""``POST /registry/events``: a registry's notification envelopes, taken into Redis before the answer.

The checks run in this order, each answered with a short JSON error and nothing stored: the
method (405); the bearer token, which names the sending registry (401 with ``WWW-Authenticate``;
the body is not read); ``Content-Length`` (411 without, 413 over :data:`MAX_ENVELOPE_BYTES`, both
before the body is read); the content type (415); the envelope (400 with the reason from
:mod:`bot.core.envelopes`).  Then the relevant events are stored (:mod:`bot.core.event_intake`)
and the answer is 200 with the counts; when Redis cannot take them, 503, and the registry sends the
envelope again (Distribution retries until it gets a 2xx).  Nothing here calls Slack or a registry.

Each envelope gets one log line: the registry, and how many events were taken, duplicates and
ignored; never the body, a header value or a token.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import redis

from bot.core.envelopes import EnvelopeError, UnsupportedMediaType, check_media_type, read_envelope
from bot.core.event_intake import EventIntake
from bot.http.guard import Refused, read_body, respond
from workers.kernel.config import RegistryConfig
from workers.kernel.secrets import Secret

log = logging.getLogger(__name__)

REGISTRY_EVENTS_PATH = "/registry/events"

MAX_ENVELOPE_BYTES = 64 * 1024
"""The largest envelope accepted.

Distribution 2.8 puts one event in each envelope: the recorded ones (tests/support/registry_envelopes/)
are 0.5 to 1 kB, and one with the longest repository path (255 characters, written twice, in
``repository`` and ``url``), a 128-character tag and a long user agent stays under 2 kB.  A registry
that batches (the envelope format allows it) fits some 60 such events.  It is also the largest body
``regops serve`` buffers at all (:data:`bot.http.guard.MAX_BODY_BYTES`, which the worker enforces
before any app code runs), so it cannot be raised here alone."""

TOKEN_LENGTH_MIN = 16
_TOKEN = re.compile(r"[\x21-\x7e]+")
"""What a header can carry as a bearer token: visible ASCII, no spaces."""
_REALM = 'Bearer realm="regops registry events"'


def read_events_tokens(registries: Mapping[str, RegistryConfig],
                       environ: Mapping[str, str]) -> tuple[dict[str, Secret], list[str]]:
    """Each events-enabled registry's token (config name → Secret), and what is wrong, as sentences.

    A problem names the registry and where its token was looked for, never a value: a token that
    is missing, empty, unreadable, too short or not sendable in a header, and a token two
    registries share (the token is what says which registry sent an envelope).
    """
    tokens: dict[str, Secret] = {}
    problems: list[str] = []
    for registry in registries.values():
        if not registry.events_enabled:
            continue
        source = (f"environment variable {registry.events_token_env}" if registry.events_token_env
                  else f"file {registry.events_token_file}")
        where = f"the events token of registry `{registry.name}` ({source})"
        try:
            value = _read_token(registry, environ)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            problems.append(f"{where} cannot be read ({reason})")
            continue
        if not value:
            problems.append(f"{where} is empty or not set: set it to the token in the registry's notifications "
                            "endpoint header (`Authorization: Bearer TOKEN`)")
        elif not _TOKEN.fullmatch(value):
            problems.append(f"{where} has characters a header cannot carry (spaces, non-ASCII)")
        elif len(value) < TOKEN_LENGTH_MIN:
            problems.append(f"{where} is shorter than {TOKEN_LENGTH_MIN} characters: use a random one, e.g. "
                            "`openssl rand -hex 32`")
        else:
            shared = [name for name, token in tokens.items() if hmac.compare_digest(token.reveal(), value)]
            if shared:
                problems.append(f"{where} is the same as the events token of registry `{shared[0]}`: give each "
                                "registry a token of its own (the token tells regops which registry sent an "
                                "envelope)")
            tokens[registry.name] = Secret(value)
    return tokens, problems


def _read_token(registry: RegistryConfig, environ: Mapping[str, str]) -> str:
    if registry.events_token_env:
        return environ.get(registry.events_token_env, "").strip()
    return Path(str(registry.events_token_file)).read_text(encoding="utf-8").strip()


class SenderTokens:
    """Which registry an ``Authorization: Bearer TOKEN`` header comes from (registry name → its token)."""

    def __init__(self, tokens: Mapping[str, Secret]) -> None:
        self._tokens = [(name, token.reveal().encode()) for name, token in tokens.items()]

    def sender(self, authorization: str) -> str | None:
        """The registry whose token the header carries, or None.

        Compared with every token, each in constant time, so neither the answer's timing nor its
        order says how much of a token was right or which registries there are.
        """
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        # WSGI hands header values over as latin-1 text; compared as bytes.
        given = credentials.strip().encode("latin-1", "replace")
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(given, token) and found is None:
                found = name
        return found


class RegistryEventsEndpoint:
    """The WSGI app of ``POST /registry/events`` (see the module for the order of checks)."""

    def __init__(self, tokens: SenderTokens, intake: EventIntake, *, max_body: int = MAX_ENVELOPE_BYTES,
                 clock: Callable[[], float] = time.time) -> None:
        self._tokens = tokens
        self._intake = intake
        self._max_body = max_body
        self._clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return respond(start_response, "405 Method Not Allowed", {"error": "use POST"}, [("Allow", "POST")])
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        registry = self._tokens.sender(authorization)
        if registry is None:
            log.warning("registry events: refused an envelope without a valid token (%s)",
                        "no Authorization header" if not authorization else "a wrong or malformed token")
            challenge = _REALM if not authorization else f'{_REALM}, error="invalid_token"'
            return respond(start_response, "401 Unauthorized",
                           {"error": "a registry's bearer token is required"}, [("WWW-Authenticate", challenge)])
        try:
            body = self._body(environ)
            envelope = read_envelope(body, environ.get("CONTENT_TYPE", ""), registry, self._clock())
        except Refused as refusal:
            log.warning("registry events from %s: refused (%s)", registry, refusal.reason)
            return respond(start_response, refusal.status, {"error": refusal.reason})
        except EnvelopeError as exc:
            status = "415 Unsupported Media Type" if isinstance(exc, UnsupportedMediaType) else "400 Bad Request"
            log.warning("registry events from %s: refused (%s)", registry, exc.reason)
            return respond(start_response, status, {"error": exc.reason})
        try:
            stored = self._intake.store(registry, envelope.events, self._clock())
        except redis.RedisError as exc:
            log.error("registry events from %s: not stored, Redis unavailable (%s); the registry will retry",
                      registry, type(exc).__name__)
            return respond(start_response, "503 Service Unavailable", {"error": "cannot store events now; retry"},
                           [("Retry-After", "5")])
        log.info("registry events from %s: %d taken, %d duplicate, %d ignored", registry, stored.taken,
                 stored.duplicate, envelope.ignored)
        return respond(start_response, "200 OK",
                       {"taken": stored.taken, "duplicate": stored.duplicate, "ignored": envelope.ignored})

    def _body(self, request: Mapping[str, Any]) -> bytes:
        """The body, once its length is declared and within bounds and its content type is an envelope's."""
        declared = request.get("CONTENT_LENGTH") or ""
        if not declared:
            raise Refused("411 Length Required", "a Content-Length is required")
        if not declared.isascii() or not declared.isdigit():
            raise Refused("400 Bad Request", "malformed Content-Length")
        if int(declared) > self._max_body:
            raise Refused("413 Content Too Large", f"the body is larger than {self._max_body} bytes")
        check_media_type(request.get("CONTENT_TYPE", ""))
        return read_body(request, self._max_body)
