"""Job payloads shared by the bot and the workers (stdlib only, JSON, versioned).

The job spec a worker receives, the job record both sides update, the events a worker
emits, the states a job goes through and the reasons it may fail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from workers.kernel.actions import TASKS

SCHEMA_VERSION = 1


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def flat_values(obj: Any) -> dict[str, Any]:
    """``dataclasses.asdict`` for a dataclass of plain values (str, numbers, None, a dict of str), without its
    recursive deep copy: the same keys in the same order, the same values (a dict field is copied)."""
    return {name: (dict(value) if isinstance(value := getattr(obj, name), dict) else value)
            for name in _field_names(type(obj))}


_OPTIONAL_SPEC: Mapping[str, Any] = {"source_registry": None, "source_server": None, "digest": None,
                                     "shared": False, "match": None, "limit": None, "override": None}
"""Job-spec fields only some actions use, with the defaults a payload leaves out."""


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run one job. Never holds a credential.

    ``reference`` is the full registry reference ``server/namespace/image:tag``
    (None for ``login``; ``server/namespace/image`` for ``tags``; for ``inspect`` it may
    end in ``@sha256:…``); ``source`` is the local image (reference or ID) to tag for
    ``push``/``tag``, and for ``promote`` the full reference it copies from (a tag or a
    digest) in ``source_registry``; ``registry`` names the configured registry whose
    credentials the worker loads from its own config; ``server`` is that registry's
    host:port.  ``digest`` is where a ``rollback`` points the tag, and for a ``promote`` from a tag
    the digest it is pinned to (``promote IMAGE staging@sha256:… prod``: the source tag must still
    point there when the worker runs); ``shared`` lets a
    ``delete`` remove a manifest other tags share; ``match`` and ``limit`` shape a
    ``tags`` answer.  ``override`` is a break-glass reason: the job was approved by a second person
    whose roles allow ``freeze``, so a freeze or a promotion path does not stop it (an immutable tag
    still does).
    """

    job_id: str
    action: str
    registry: str
    server: str
    reference: str | None = None
    source: str | None = None
    requester: str = ""
    version: int = SCHEMA_VERSION
    source_registry: str | None = None
    source_server: str | None = None
    digest: str | None = None
    shared: bool = False
    match: str | None = None
    limit: int | None = None
    override: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Fields at their defaults are left out: a push's payload is what it always was.
        return {k: v for k, v in flat_values(self).items() if k not in _OPTIONAL_SPEC or v != _OPTIONAL_SPEC[k]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        if data.get("version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported job spec version {data.get('version')!r}")
        if data.get("action") not in TASKS:
            raise ValueError(f"unknown action {data.get('action')!r}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class EventType(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL_EVENTS = frozenset({EventType.SUCCEEDED.value, EventType.FAILED.value})
"""Event types a worker ends a job with."""


class JobState(StrEnum):
    """The ``state`` of a job record: the one spelling of every state a job goes through."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


ENDED_STATES: frozenset[str] = frozenset(
    state.value
    for state in (JobState.SUCCEEDED, JobState.FAILED, JobState.REJECTED, JobState.EXPIRED, JobState.CANCELLED)
)
"""States a job never leaves (as plain strings: records read from Redis hold strings)."""

ACTIVE_STATES: frozenset[str] = frozenset({JobState.QUEUED.value, JobState.RUNNING.value})
"""States of a job that is on a queue or on a worker (and can be cancelled there)."""


class FailureReason(StrEnum):
    """Why a job failed; each has a user-safe sentence in :data:`FAILURE_MESSAGES`."""

    IMAGE_NOT_FOUND = "image_not_found"
    AUTH_FAILED = "auth_failed"
    REGISTRY_UNREACHABLE = "registry_unreachable"
    ENGINE_UNREACHABLE = "engine_unreachable"
    TIMED_OUT = "timed_out"
    DENIED = "denied"
    INVALID_REFERENCE = "invalid_reference"
    REGISTRY_ERROR = "registry_error"
    INTERNAL = "internal"
    WORKER_LOST = "worker_lost"
    NOT_FOUND = "not_found"
    TAG_SHARED = "tag_shared"
    DELETE_DISABLED = "delete_disabled"
    FROZEN = "frozen"
    IMMUTABLE = "immutable"
    PROMOTION_PATH = "promotion_path"
    SOURCE_MOVED = "source_moved"


FAILURE_MESSAGES: Mapping[str, str] = {
    FailureReason.IMAGE_NOT_FOUND.value: "local image not found",
    FailureReason.AUTH_FAILED.value: "registry authentication failed",
    FailureReason.REGISTRY_UNREACHABLE.value: "registry unreachable",
    FailureReason.ENGINE_UNREACHABLE.value: "Docker engine unreachable",
    FailureReason.TIMED_OUT.value: "timed out",
    FailureReason.DENIED.value: "the registry denied the request",
    FailureReason.INVALID_REFERENCE.value: "invalid image reference",
    FailureReason.REGISTRY_ERROR.value: "the registry reported an error",
    FailureReason.INTERNAL.value: "internal error on the worker",
    FailureReason.WORKER_LOST.value: "the worker running it stopped (killed or crashed) before it finished",
    FailureReason.NOT_FOUND.value: "not found in the registry",
    FailureReason.TAG_SHARED.value: "other tags share the manifest",
    FailureReason.DELETE_DISABLED.value: "deleting is not enabled on this registry",
    FailureReason.FROZEN.value: "a change freeze applies",
    FailureReason.IMMUTABLE.value: "the tag is immutable",
    FailureReason.PROMOTION_PATH.value: "the promotion path does not allow it",
    FailureReason.SOURCE_MOVED.value: "the source moved away from the pinned digest",
}


@dataclass(frozen=True)
class JobEvent:
    """One step of a job, as written to :data:`EVENTS_STREAM`.

    ``message`` is a user-safe sentence (never a raw exception or credential);
    ``reason`` is a :class:`FailureReason` value for ``failed`` events.
    """

    job_id: str
    type: str
    at: float
    progress: int | None = None
    digest: str | None = None
    reason: str | None = None
    message: str | None = None
    version: int = SCHEMA_VERSION

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for XADD (None values left out)."""
        return {k: str(v) for k, v in flat_values(self).items() if v is not None}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> JobEvent:
        return cls(
            job_id=fields["job_id"],
            type=fields["type"],
            at=float(fields["at"]),
            progress=int(fields["progress"]) if "progress" in fields else None,
            digest=fields.get("digest"),
            reason=fields.get("reason"),
            message=fields.get("message"),
            version=int(fields.get("version", SCHEMA_VERSION)),
        )


@dataclass(frozen=True)
class JobRecord:
    """The job's current state, kept in the Redis hash :func:`job_key`.

    The bot writes the whole record when it queues the job; workers update
    ``state``, ``progress``, ``started_at``, ``finished_at``, ``digest``,
    ``reason`` and ``message``.  Front-end details (Slack channel, message ts,
    response_url) are not part of it.
    """

    job_id: str
    action: str
    registry: str
    host: str
    requester: str
    reference: str | None = None
    source: str | None = None
    state: str = JobState.QUEUED.value
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    progress: int | None = None
    digest: str | None = None
    reason: str | None = None
    message: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    _INT = ("progress",)
    _FLOAT = ("queued_at", "started_at", "finished_at")

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in flat_values(self).items():
            if k == "extra":
                if v:
                    out["extra"] = json.dumps(v, sort_keys=True)
            elif v is not None:
                out[k] = str(v)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> JobRecord:
        data: dict[str, Any] = {}
        known = set(cls.__dataclass_fields__)
        for k, v in fields.items():
            if k not in known:
                continue
            if k in cls._INT:
                data[k] = int(v)
            elif k in cls._FLOAT:
                data[k] = float(v)
            elif k == "extra":
                data[k] = json.loads(v)
            else:
                data[k] = v
        return cls(**data)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


def state_update(event: JobEvent) -> dict[str, str]:
    """Job-record fields an event sets (applied together with the XADD)."""
    state = JobState.RUNNING.value if event.type in (EventType.STARTED.value, EventType.PROGRESS.value) else event.type
    fields: dict[str, str] = {"state": state}
    if event.type == EventType.STARTED.value:
        fields["started_at"] = str(event.at)
    if event.type in (EventType.SUCCEEDED.value, EventType.FAILED.value):
        fields["finished_at"] = str(event.at)
    for name in ("progress", "digest", "reason", "message"):
        value = getattr(event, name)
        if value is not None:
            fields[name] = str(value)
    if event.type == EventType.SUCCEEDED.value:
        fields["progress"] = "100"
    if event.type == EventType.STARTED.value and event.message is None:
        fields["message"] = ""  # a note from an earlier run (e.g. "handed back to the queue") is over
    return fields
