"""What a job is doing, in one line whose first word is its state: the text every front end shows."""

from __future__ import annotations

from workers.kernel.jobs import FAILURE_MESSAGES, JobRecord, JobState


def _target(record: JobRecord) -> str:
    if record.action == "login":
        registry = record.reference or record.extra.get("server") or record.registry
        return f"login to registry `{registry}`"
    if record.action == "tag":
        return f"tag of `{record.source}` as `{record.reference}`"
    return f"{record.action} of `{record.reference}`"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def failure_text(record: JobRecord) -> str:
    """The failure reason in plain words, with the worker's detail when it adds something."""
    reason = FAILURE_MESSAGES.get(record.reason or "", "failed")
    if record.message and record.message.lower() != reason.lower():
        return f"{reason}: {record.message}"
    return reason


def outcome_text(record: JobRecord) -> str:
    """One line whose first word is the job's state: queued, running, succeeded or failed."""
    target = _target(record)
    if record.state == JobState.SUCCEEDED:
        parts = [f"succeeded: {target}"]
        if record.digest:
            parts.append(f"digest `{record.digest}`")
        elif record.message:
            parts.append(record.message)
        took = duration_text(record.duration)
        if took:
            parts.append(f"took {took}")
        return " — ".join(parts)
    if record.state == JobState.FAILED:
        return f"failed: {target} — {failure_text(record)}"
    if record.state == JobState.RUNNING:
        progress = f" — {record.progress}%" if record.progress is not None else ""
        # While running, the worker's message says what it waits for (a lock, a retry's backoff).
        note = f" — {record.message}" if record.message else ""
        return f"running: {target}{progress}{note}"
    if record.state == JobState.AWAITING_APPROVAL:
        return f"needs approval: {target}"
    if record.state == JobState.REJECTED:
        return f"rejected: {target} — nothing was queued"
    if record.state == JobState.EXPIRED:
        return f"expired: {target} — no decision in time, nothing was queued"
    if record.state == JobState.CANCELLED:
        by = record.extra.get("cancelled_by")
        return f"cancelled: {target}" + (f" — by <@{by}>" if by else "")
    if record.state == JobState.QUEUED:
        note = f" — {record.message}" if record.message else ""  # e.g. handed back by a stopping worker
        return f"queued: {target}{note}"
    return f"{record.state}: {target}"
