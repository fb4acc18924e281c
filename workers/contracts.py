"""Job and event payloads shared by the bot and the workers (stdlib only, JSON, versioned).

This module is the only part of ``workers`` that ``bot`` may import.  It names the
Redis keys both sides agree on, the rq task entry points, the job payload a worker
receives, the job record both sides update, the events a worker emits, and the
audit entries both sides append.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

SCHEMA_VERSION = 1

KEY_PREFIX = "regops"
EVENTS_STREAM = f"{KEY_PREFIX}:events"
"""Redis stream of job events, appended by the bot (queued) and workers (the rest)."""

EVENTS_STREAM_MAXLEN = 100_000


class Action(str, Enum):
    PUSH = "push"
    PULL = "pull"
    TAG = "tag"
    LOGIN = "login"


TASKS: Mapping[str, str] = {
    Action.PUSH.value: "workers.tasks.push",
    Action.PULL.value: "workers.tasks.pull",
    Action.TAG.value: "workers.tasks.tag",
    Action.LOGIN.value: "workers.tasks.login",
}
"""rq function paths by action: the only functions a regops worker will run."""


def queue_name(host: str) -> str:
    """Name of the rq queue the workers of Docker host ``host`` listen on."""
    return f"{KEY_PREFIX}.{host}"


HEARTBEAT_TTL_SECONDS = 20
"""A running job's heartbeat key lives this long; the worker renews it every few seconds."""


def heartbeat_key(job_id: str) -> str:
    """Redis string that exists while a worker is alive and running the job (value: worker name)."""
    return f"{KEY_PREFIX}:heartbeat:{job_id}"


HEARTBEAT_INTERVAL_SECONDS = 5.0
"""How often a worker renews a running job's heartbeat key and reference lock."""


def reference_lock_key(reference: str) -> str:
    """Redis string held (value: job id) by the one job working on a full reference right now.

    Its TTL is :data:`HEARTBEAT_TTL_SECONDS`, renewed with the job's heartbeat, so the lock of a
    worker that died expires with its heartbeat.
    """
    return f"{KEY_PREFIX}:reflock:{reference}"


def job_key(job_id: str) -> str:
    """Redis hash holding the job record (see :class:`JobRecord`)."""
    return f"{KEY_PREFIX}:job:{job_id}"


class Secret:
    """A string that never shows itself in a repr, str, log line or traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run one job. Never holds a credential.

    ``reference`` is the full registry reference ``server/namespace/image:tag``
    (None for ``login``); ``source`` is the local image (reference or ID) to tag
    for ``push``/``tag``; ``registry`` names the configured registry whose
    credentials the worker loads from its own config; ``server`` is that
    registry's host:port.
    """

    job_id: str
    action: str
    registry: str
    server: str
    reference: str | None = None
    source: str | None = None
    requester: str = ""
    version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        if data.get("version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported job spec version {data.get('version')!r}")
        if data.get("action") not in TASKS:
            raise ValueError(f"unknown action {data.get('action')!r}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class EventType(str, Enum):
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL_EVENTS = frozenset({EventType.SUCCEEDED.value, EventType.FAILED.value})

RUNNING = "running"
"""Job-record state between ``started`` and a terminal event (queued/running/succeeded/failed)."""


class FailureReason(str, Enum):
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
        return {k: str(v) for k, v in asdict(self).items() if v is not None}

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
    state: str = EventType.QUEUED.value
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
        for k, v in asdict(self).items():
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
    state = RUNNING if event.type in (EventType.STARTED.value, EventType.PROGRESS.value) else event.type
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


AUDIT_STREAM = f"{KEY_PREFIX}:audit"
"""Redis stream of :class:`AuditEntry` s. Append-only: nothing in regops trims or deletes it."""


class AuditKind(str, Enum):
    COMMAND = "command"
    APPROVAL = "approval"
    JOB = "job"


AUDIT_DECISIONS: Mapping[str, frozenset[str]] = {
    AuditKind.COMMAND.value: frozenset(
        {"allowed", "queued", "denied", "invalid", "refused", "needs_approval", "answered"}
    ),
    AuditKind.APPROVAL.value: frozenset({"requested", "approved", "rejected", "expired", "refused"}),
    AuditKind.JOB.value: frozenset({EventType.SUCCEEDED.value, EventType.FAILED.value, "cancelled"}),
}
"""The decisions each kind of audit entry may record."""


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit trail: who asked for what, where, what was decided and why.

    ``command`` is the command text with secrets already removed ("" for job
    outcomes); ``rule`` names what decided (e.g. ``grants[1] role deployer``,
    ``approvals[0]``, ``no grant matches``); ``outcome`` is a job's digest or
    failure, or the reason text of a decision.  No field ever holds a secret.
    """

    at: float
    user: str
    channel: str
    kind: str
    command: str
    decision: str
    rule: str = ""
    job_id: str = ""
    outcome: str = ""
    version: int = SCHEMA_VERSION

    def validate(self) -> None:
        """Raise ValueError unless ``kind`` and ``decision`` are ones the trail knows."""
        allowed = AUDIT_DECISIONS.get(self.kind)
        if allowed is None:
            raise ValueError(f"unknown audit entry kind {self.kind!r}")
        if self.decision not in allowed:
            raise ValueError(f"decision {self.decision!r} is not one of {sorted(allowed)} for a {self.kind} entry")

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for XADD; every field is written, empty ones as ""."""
        return {k: str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> AuditEntry:
        """The entry from its stream fields; lenient, so that no entry ever becomes unreadable."""

        def text(name: str) -> str:
            return str(fields.get(name, ""))

        try:
            at = float(fields.get("at", "0"))
        except ValueError:
            at = 0.0
        try:
            version = int(fields.get("version", SCHEMA_VERSION))
        except ValueError:
            version = SCHEMA_VERSION
        return cls(at=at, user=text("user"), channel=text("channel"), kind=text("kind"),
                   command=text("command"), decision=text("decision"), rule=text("rule"),
                   job_id=text("job_id"), outcome=text("outcome"), version=version)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: every field, plus ``time`` as ISO 8601 UTC for people reading it."""
        data: dict[str, Any] = asdict(self)
        data["time"] = iso_time(self.at)
        return data


def iso_time(at: float) -> str:
    """Unix time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonLogFormatter(logging.Formatter):
    """The JSON log line every regops process writes with ``--log-format json``: one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)
