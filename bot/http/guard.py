"""The HTTP edge in front of Bolt: every ``POST /slack/events`` is bounded, signed and well formed, or refused.

What reaches Bolt has been read whole (at most :data:`MAX_BODY_BYTES`), decoded as UTF-8,
verified with slack_sdk's :class:`~slack_sdk.signature.SignatureVerifier` (the check Bolt
makes: a v0 HMAC-SHA256 of ``v0:timestamp:body``, the timestamp within five minutes) and
parsed exactly as Bolt parses it, into a JSON object whose fields Bolt and regops' listeners
read have the types they expect.  Anything else is answered here, with a short JSON error and
no traceback: 413 for a body over the limit (refused from ``Content-Length`` before reading
it; a chunked body is counted as it is read and cut at the limit), 401 when the signature
cannot be checked or does not match, 400 for a body that is not what Slack sends.

So Bolt never sees an unsigned request, and never logs one: its own verification (kept, as a
second check of the same signature) logs a rejected request's body in full, at INFO.  Nothing
here logs a body, a header value or a parsed field; refusals are logged at DEBUG by reason only.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.signature import Clock, SignatureVerifier

from bot.slack.payloads import MalformedPayload, check_payload
from workers.kernel.secrets import Secret

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""The largest request body accepted on ``/slack/events``.

Slack's payloads for what regops handles are a few kB: a slash command is a dozen short form
fields plus its text (Slack caps it at a few thousand characters; 4,000 four-byte characters,
percent-encoded, are 48 kB), and a button click's ``payload`` carries the message it was clicked
on, which regops wrote itself (a few blocks, each at most 3,000 characters).  Modal submissions,
should regops open modals later, carry their inputs' values: tens of kB.  64 KiB fits all of
them and bounds what one request can hold in memory (16 request threads: 1 MiB)."""

READ_CHUNK = 16 * 1024
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
"""ASCII digits only: ``int()`` would also take " 1", "+1", "1_000" and other scripts' digits."""
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
"""What Slack sends; anything else (non-ASCII above all: hmac.compare_digest refuses it) is 401 here."""


class Refused(Exception):
    """The request is answered at the edge with ``status`` and the sentence ``reason``."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bad_request(reason: str) -> Refused:
    return Refused("400 Bad Request", reason)


def unauthorized(reason: str) -> Refused:
    return Refused("401 Unauthorized", reason)


@dataclass(frozen=True)
class Commands:
    """Slash commands answered at the edge: ``takes(body)`` says which, ``answer(body)`` is the JSON response.

    The body was verified and parsed here exactly as Bolt would, so parsing it a second time in
    Bolt buys nothing (bot/slack/app.py's :func:`~bot.slack.app.acknowledge_command` is the same
    listener Bolt calls).  Everything else still goes to ``app``.
    """

    takes: Callable[[Mapping[str, Any]], bool]
    answer: Callable[[Mapping[str, Any]], Mapping[str, Any]]


class SlackGuard:
    """WSGI middleware: ``POST path`` is checked (see the module) before ``app`` sees it; the rest passes.

    With ``commands``, a slash command that passed is answered here (see :class:`Commands`).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], signing_secret: Secret, *, path: str,
                 max_body: int = MAX_BODY_BYTES, clock: Clock | None = None,
                 commands: Commands | None = None) -> None:
        self._app = app
        self._commands = commands
        self._path = path
        self._max_body = max_body
        self._verifier = SignatureVerifier(signing_secret.reveal(), **({"clock": clock} if clock else {}))

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") != self._path or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        try:
            body, data = self.checked(environ)
        except Refused as refusal:
            log.debug("slack request refused at the edge: %s", refusal.reason)
            return respond(start_response, refusal.status, {"error": refusal.reason})
        if self._commands is not None and self._commands.takes(data):
            # Bolt's own response for an ack with a body: 200, JSON, its Content-Type.
            return respond(start_response, "200 OK", self._commands.answer(data),
                           content_type="application/json;charset=utf-8")
        inner = dict(environ)
        inner["wsgi.input"] = io.BytesIO(body)
        inner["CONTENT_LENGTH"] = str(len(body))
        inner.pop("HTTP_TRANSFER_ENCODING", None)
        return self._app(inner, start_response)

    def check(self, request: Mapping[str, Any]) -> bytes:
        """The request's body, once it is bounded, signed and well formed; else :class:`Refused`."""
        return self.checked(request)[0]

    def checked(self, request: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """:meth:`check`'s body, and the body parsed as Bolt parses it."""
        raw = read_body(request, self._max_body)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("the body is not UTF-8") from None
        timestamp = request.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = request.get("HTTP_X_SLACK_SIGNATURE", "")
        if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
            raise unauthorized("missing or malformed signature headers")
        if not self._verifier.is_valid(text, timestamp, signature):
            raise unauthorized("invalid or expired signature")
        text = spell_out_payload_word(text, request.get("CONTENT_TYPE"))
        data = parse_like_bolt(text, request.get("CONTENT_TYPE"))
        try:
            check_payload(data)
        except MalformedPayload as exc:
            raise bad_request(f"the payload is not what Slack sends ({exc})") from None
        return text.encode("utf-8"), data


def spell_out_payload_word(text: str, content_type: str | None) -> str:
    """A form body whose values merely contain the word "payload", with its `p` percent-encoded.

    Bolt reads any form body containing "payload" as an interactive payload and, finding no
    ``payload`` field, as empty: a command like ``push payload-api 1`` would be dropped unanswered.
    ``%70`` decodes to ``p``, so the form is the same to every reader; the signature was checked on
    the body as Slack sent it, which is why Bolt is told not to check it again (see bot/slack/app.py).
    """
    if (content_type or "").split(";")[0] == "application/json" or text.startswith("{") or "payload" not in text:
        return text
    if "payload" in dict(parse_qsl(text, keep_blank_values=True)):
        return text
    return text.replace("payload", "%70ayload")


def read_body(request: Mapping[str, Any], limit: int) -> bytes:
    """At most ``limit`` bytes of the body: 413 from ``Content-Length`` before reading, or once past it."""
    declared = request.get("CONTENT_LENGTH") or ""
    stream = request.get("wsgi.input")
    too_large = Refused("413 Content Too Large", f"the body is larger than {limit} bytes")
    if declared:
        if not declared.isascii() or not declared.isdigit():
            raise bad_request("malformed Content-Length")
        length = int(declared)
        if length > limit:
            raise too_large
    elif "chunked" in request.get("HTTP_TRANSFER_ENCODING", "").lower():
        length = limit + 1  # read until the end, or one byte past the limit
    else:
        return b""  # WSGI: without Content-Length there is no body to read
    if stream is None:
        return b""
    parts: list[bytes] = []
    received = 0
    while received < length:
        part = stream.read(min(READ_CHUNK, length - received))
        if not part:
            break
        parts.append(part)
        received += len(part)
    if received > limit:
        raise too_large
    return b"".join(parts)


def parse_like_bolt(text: str, content_type: str | None) -> dict[str, Any]:
    """The body as Bolt's ``parse_body`` reads it (the same rules, on purpose), or 400."""
    if not text:
        return {}
    media = (content_type or "").split(";")[0]
    try:
        if media == "application/json" or text.startswith("{"):
            data = json.loads(text)
            kind = "a JSON body"
        elif "payload" in text:
            payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
            if payload is None:
                return {}
            data = json.loads(payload)
            kind = "the payload field"
        else:
            return dict(parse_qsl(text, keep_blank_values=True))
    except (ValueError, RecursionError):  # json.JSONDecodeError is a ValueError; so are parse_qsl's
        raise bad_request("the body is not what Slack sends (malformed JSON)") from None
    if not isinstance(data, dict):
        raise bad_request(f"{kind} must be a JSON object")
    return data


def respond(start_response: Callable, status: str, body: Mapping[str, Any],
            headers: Iterable[tuple[str, str]] = (), content_type: str = "application/json") -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload))), *headers])
    return [payload]
