"""What a job is doing, in one line whose first word is its state: the text every front end shows."""

from __future__ import annotations

from bot.core.registry_views import short_digest
from bot.core.text import Text, code, join, plain, t, user
from workers.kernel.jobs import FAILURE_MESSAGES, JobRecord, JobState


def _target(record: JobRecord) -> Text:
    if record.action == "login":
        registry = record.reference or record.extra.get("server") or record.registry
        return t("login to registry {}", code(registry))
    if record.action == "tag":
        return t("tag of {} as {}", code(record.source), code(record.reference))
    if record.action == "promote":
        return t("promote of {} to {}", code(record.source), code(record.reference))
    if record.action == "rollback" and record.extra.get("to"):
        return t("rollback of {} to {}", code(record.reference), short_digest(record.extra["to"]))
    return t("{} of {}", record.action, code(record.reference))


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def failure_text(record: JobRecord) -> Text:
    """The failure reason in plain words, with the worker's detail when it adds something."""
    reason = FAILURE_MESSAGES.get(record.reason or "", "failed")
    if record.message and record.message.lower() != reason.lower():
        return t("{}: {}", reason, record.message)
    return plain(reason)


def state_word(record: JobRecord) -> str:
    """The word an outcome line starts with."""
    return "needs approval" if record.state == JobState.AWAITING_APPROVAL else record.state


def outcome_details(record: JobRecord) -> Text:
    """The outcome line after its state word: the target, then what is known of how it went."""
    target = _target(record)
    # A worker's message (what it waits for, a retry's backoff, a handed-back note) is shown as given.
    note = t(" — {}", record.message) if record.message else Text()
    if record.state == JobState.SUCCEEDED:
        parts = [target]
        if record.digest:
            parts.append(t("digest {}", code(record.digest)))
        elif record.message:
            parts.append(t("{}", record.message))
        took = duration_text(record.duration)
        if took:
            parts.append(t("took {}", took))
        return join(" — ", parts)
    if record.state == JobState.FAILED:
        return t("{} — {}", target, failure_text(record))
    if record.state == JobState.RUNNING:
        progress = t(" — {}%", record.progress) if record.progress is not None else Text()
        return target + progress + note
    if record.state == JobState.REJECTED:
        return t("{} — nothing was queued", target)
    if record.state == JobState.EXPIRED:
        return t("{} — no decision in time, nothing was queued", target)
    if record.state == JobState.CANCELLED:
        by = record.extra.get("cancelled_by")
        return target + (t(" — by {}", user(by)) if by else Text())
    if record.state == JobState.QUEUED:
        return target + note
    return target


def outcome_text(record: JobRecord) -> Text:
    """One line whose first word is the job's state: queued, running, succeeded or failed."""
    return t("{}: {}", state_word(record), outcome_details(record))
