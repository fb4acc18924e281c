"""A registry's notification envelope read into the events regops takes, or refused with a plain reason.

What Distribution 2.8 sends (tests/support/registry_envelopes/, recorded from a real registry):
``Content-Type: application/vnd.docker.distribution.events.v1+json``, a body
``{"events": [{...}]}`` (2.8 puts one event in each envelope; others may put several), and per
event an ``id`` (a UUID), ``timestamp`` (RFC 3339, nanoseconds, ``Z``), ``action``, ``target``
(``repository``; for manifests ``mediaType``, ``digest`` and, when pushed by tag, ``tag``),
``request.addr`` and ``actor.name``.

Kept: a ``push`` of a manifest (one of the four manifest media types) under a tag, and every
``delete`` (a manifest delete names its digest and no tag; then one tag delete follows per tag
that pointed at it, naming the tag and no digest).  Ignored: pulls (2.8 sends them even when told
not to), mounts, blob pushes (``application/octet-stream``), manifests pushed by digest alone (an
index's children), and actions regops does not know.  An envelope that is not one (not JSON, no
``events`` list, an event without a sane ``id``, ``action`` or ``target.repository``) is refused
whole with :class:`EnvelopeError`: nothing of it is stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bot.core.registry_events import RegistryEvent
from workers.kernel.errors import UsageError
from workers.kernel.references import check_namespace, check_tag

ENVELOPE_MEDIA_TYPES = frozenset({"application/vnd.docker.distribution.events.v1+json", "application/json"})
"""What ``Content-Type`` may say (parameters such as ``charset`` aside)."""

MANIFEST_MEDIA_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
})
"""A push of one of these under a tag is a tag change (the same four the registry client asks for)."""

ID_LENGTH_MAX = 128
ACTION_LENGTH_MAX = 32
NAME_LENGTH_MAX = 256
"""Longest actor name or client address kept; a longer one is dropped (it is only shown, never matched)."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,256}")
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)


class EnvelopeError(ValueError):
    """The body is not a registry notification envelope; ``reason`` says why, in a sentence (no input echoed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedMediaType(EnvelopeError):
    """The ``Content-Type`` is neither Distribution's events type nor JSON (HTTP 415)."""


def media_type_of(content_type: str) -> str:
    """``application/json; charset=utf-8`` → ``application/json`` (lower case, parameters dropped)."""
    return content_type.split(";", 1)[0].strip().lower()


def check_media_type(content_type: str) -> None:
    """:class:`UnsupportedMediaType` unless ``content_type`` names a type an envelope comes as."""
    if media_type_of(content_type) not in ENVELOPE_MEDIA_TYPES:
        raise UnsupportedMediaType(
            "the content type must be application/vnd.docker.distribution.events.v1+json or application/json")


@dataclass(frozen=True)
class Envelope:
    """The relevant events of one envelope, in its order, and how many others it held (ignored)."""

    events: list[RegistryEvent]
    ignored: int


def parse_envelope(body: bytes, content_type: str, registry: str, now: float) -> list[RegistryEvent]:
    """The relevant events of the envelope ``body`` sent by ``registry`` (its config name), in envelope order.

    ``now`` is the time given to an event without a readable ``timestamp``.  Raises
    :class:`UnsupportedMediaType` for another content type, :class:`EnvelopeError` for a body that
    is no envelope (then none of its events is taken).
    """
    return read_envelope(body, content_type, registry, now).events


def read_envelope(body: bytes, content_type: str, registry: str, now: float) -> Envelope:
    """:func:`parse_envelope`, also counting the events it ignored (for the endpoint's log line)."""
    check_media_type(content_type)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # a JSONDecodeError and a UnicodeDecodeError are ValueErrors
        raise EnvelopeError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise EnvelopeError("the body must be a JSON object with an `events` list")
    events = data.get("events")
    if not isinstance(events, list):
        raise EnvelopeError("the body has no `events` list")
    taken = []
    for index, event in enumerate(events):
        parsed = _event(event, f"events[{index}]", registry, now)
        if parsed is not None:
            taken.append(parsed)
    return Envelope(taken, len(events) - len(taken))


def _event(event: object, path: str, registry: str, now: float) -> RegistryEvent | None:
    if not isinstance(event, dict):
        raise EnvelopeError(f"{path} is not an object")
    event_id = _required_string(event, "id", path, ID_LENGTH_MAX)
    if not _ID.fullmatch(event_id):
        raise EnvelopeError(f"{path}.id has characters an event id does not have")
    action = _required_string(event, "action", path, ACTION_LENGTH_MAX)
    target = event.get("target")
    if not isinstance(target, dict):
        raise EnvelopeError(f"{path}.target is missing or not an object")
    repository = _required_string(target, "repository", f"{path}.target", 255)
    try:
        check_namespace(repository)
    except UsageError:
        raise EnvelopeError(f"{path}.target.repository is not a repository path") from None
    tag = _optional(target, "tag", f"{path}.target", check_tag)
    digest = _optional(target, "digest", f"{path}.target", _check_digest)
    media_type = _text(target.get("mediaType"), NAME_LENGTH_MAX)
    if action == "push":
        if media_type not in MANIFEST_MEDIA_TYPES or tag is None:
            return None  # a blob, or a manifest pushed by digest only
        if digest is None:
            raise EnvelopeError(f"{path}: a manifest push without a target.digest")
    elif action == "delete":
        if tag is None and digest is None:
            raise EnvelopeError(f"{path}: a delete naming neither a target.digest nor a target.tag")
        media_type = None  # Distribution names none for a delete
    else:
        return None  # pull, mount, and whatever else a registry may report
    return RegistryEvent(registry=registry, id=event_id, action=action, repository=repository,
                         at=_timestamp(event.get("timestamp"), now), tag=tag, digest=digest, media_type=media_type,
                         actor=_text(_field(event, "actor", "name"), NAME_LENGTH_MAX),
                         address=_text(_field(event, "request", "addr"), NAME_LENGTH_MAX))


def _required_string(data: Mapping[str, Any], key: str, path: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise EnvelopeError(f"{path}.{key} is missing or not a string")
    if len(value) > limit:
        raise EnvelopeError(f"{path}.{key} is longer than {limit} characters")
    return value


def _optional(data: Mapping[str, Any], key: str, path: str, check: Callable[[str], str]) -> str | None:
    """A string field that may be absent or empty (Distribution writes ``""`` for none); if given, it must check."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EnvelopeError(f"{path}.{key} is not a string")
    try:
        return check(value)
    except UsageError:
        raise EnvelopeError(f"{path}.{key} is not a valid {key}") from None


def _check_digest(value: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise UsageError("not a digest")
    return value


def _field(event: Mapping[str, Any], section: str, key: str) -> object:
    part = event.get(section)
    return part.get(key) if isinstance(part, dict) else None


def _text(value: object, limit: int) -> str | None:
    """A shown-only field: kept when it is a non-empty string of printable characters within ``limit``."""
    if isinstance(value, str) and value and len(value) <= limit and value.isprintable():
        return value
    return None


def _timestamp(value: object, now: float) -> float:
    """Epoch seconds of an RFC 3339 time (fractions to the nanosecond, any offset); ``now`` if none is readable."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return now
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = match.groups()
    offset = timedelta(0) if zulu else (1 if sign == "+" else -1) * timedelta(hours=int(off_hours),
                                                                             minutes=int(off_minutes))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), min(int(second), 59),
                          tzinfo=timezone(offset) if offset else UTC)
    except ValueError:  # a 30 February, an offset of 24 hours or more
        return now
    return moment.timestamp() + (int(fraction.ljust(9, "0")) / 1e9 if fraction else 0.0)
