"""Audit entries: who asked for what, where, what was decided and why (appended by both sides)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from workers.kernel.jobs import SCHEMA_VERSION, JobState, flat_values
from workers.kernel.times import iso_time


class AuditKind(StrEnum):
    COMMAND = "command"
    APPROVAL = "approval"
    JOB = "job"


AUDIT_DECISIONS: Mapping[str, frozenset[str]] = {
    AuditKind.COMMAND.value: frozenset(
        {"allowed", "queued", "denied", "invalid", "refused", "needs_approval", "answered", "limited"}
    ),
    AuditKind.APPROVAL.value: frozenset({"requested", "approved", "rejected", "expired", "refused"}),
    AuditKind.JOB.value: frozenset({JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.CANCELLED.value}),
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
        return {k: str(v) for k, v in flat_values(self).items()}

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
        data: dict[str, Any] = flat_values(self)
        data["time"] = iso_time(self.at)
        return data
