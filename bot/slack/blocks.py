"""Rendering replies and job states: plain sentences for any front end, Block Kit for Slack.

Every Slack message carries a fallback ``text`` that holds the key facts on its own
(full reference, digest or failure reason), as notifications and screen readers
show only that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.approvals import ApprovalView
from bot.core.outcomes import duration_text, outcome_text
from workers.kernel.jobs import ACTIVE_STATES, EventType, JobRecord, JobState

if TYPE_CHECKING:  # the service renders job lines with this module: no import cycle at run time
    from bot.core.service import Reply

APPROVE_ACTION = "regops_approve"
REJECT_ACTION = "regops_reject"
CANCEL_ACTION = "regops_cancel"

SECTION_LIMIT = 3000
"""Slack's limit on a section block's text."""

Blocks = list[dict[str, Any]]

_EMOJI = {
    EventType.QUEUED.value: ":hourglass_flowing_sand:",
    JobState.RUNNING: ":arrows_counterclockwise:",
    EventType.SUCCEEDED.value: ":white_check_mark:",
    EventType.FAILED.value: ":x:",
    JobState.AWAITING_APPROVAL: ":lock:",
    JobState.REJECTED: ":no_entry_sign:",
    JobState.EXPIRED: ":hourglass:",
    JobState.CANCELLED: ":heavy_multiplication_x:",
}


def _approvers(names: tuple[str, ...]) -> str:
    return ", ".join(f"<@{n}>" if n[:1] in ("U", "W") and n.isupper() else f"`{n}`" for n in names)


def _approval_lines(record: JobRecord, approval: ApprovalView | None) -> list[str]:
    if approval is None:
        approved = record.extra.get("approved_by")
        return [f"approved by {_approvers(tuple(approved.split(',')))}"] if approved else []
    lines = []
    if approval.state == JobState.AWAITING_APPROVAL:
        lines.append(f"needs {approval.required} approval(s) from {_approvers(approval.approvers)} "
                     f"({approval.rule}); expires <!date^{int(approval.expires_at)}^{{time}}|in time>")
    if approval.approved_by:
        lines.append(f"approved by {_approvers(approval.approved_by)}")
    if approval.state == JobState.REJECTED and approval.rejected_by:
        lines.append(f"rejected by <@{approval.rejected_by}>")
    return lines


def progress_bar(percent: int, width: int = 20) -> str:
    filled = max(0, min(width, round(percent * width / 100)))
    return "█" * filled + "░" * (width - filled)


def _clip(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text)}]}


def job_message(record: JobRecord, approval: ApprovalView | None = None) -> tuple[str, Blocks]:
    """The job's channel message: fallback text and blocks, for its current state.

    A job that needed approval keeps one message from the request to the outcome: the
    buttons show only while the request is pending.
    """
    line = outcome_text(record)
    approval_lines = _approval_lines(record, approval)
    text = f"{line} (requested by <@{record.requester}>, job {record.job_id})"
    if approval_lines:
        text += " — " + "; ".join(approval_lines)
    emoji = _EMOJI.get(record.state, ":grey_question:")
    blocks: Blocks = [_section(f"{emoji} *{line.split(':', 1)[0]}*:{line.split(':', 1)[1]}")]
    if record.state == JobState.RUNNING and record.progress is not None:
        blocks.append(_section(f"`{progress_bar(record.progress)}` {record.progress}%"))
    if approval is not None and approval.state == JobState.AWAITING_APPROVAL and record.state == JobState.AWAITING_APPROVAL:
        blocks.append({"type": "actions", "block_id": f"approval:{record.job_id}", "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": record.job_id,
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": REJECT_ACTION, "style": "danger", "value": record.job_id,
             "text": {"type": "plain_text", "text": "Reject"}},
        ]})
    if record.state in ACTIVE_STATES:
        blocks.append({"type": "actions", "block_id": f"job:{record.job_id}", "elements": [
            {"type": "button", "action_id": CANCEL_ACTION, "value": record.job_id,
             "text": {"type": "plain_text", "text": "Cancel"},
             "confirm": {"title": {"type": "plain_text", "text": "Cancel this job?"},
                         "text": {"type": "plain_text", "text": f"Job {record.job_id} will be stopped."},
                         "confirm": {"type": "plain_text", "text": "Cancel the job"},
                         "deny": {"type": "plain_text", "text": "Keep it"}}},
        ]})
    details = [f"requested by <@{record.requester}>", *approval_lines, f"host `{record.host}`",
               f"job `{record.job_id}`"]
    took = duration_text(record.duration)
    if took and record.state in (EventType.SUCCEEDED.value, EventType.FAILED.value, JobState.CANCELLED):
        details.append(f"took {took}")
    blocks.append(_context(" · ".join(details)))
    return text, blocks


def deployment_notification(record: JobRecord) -> tuple[str, Blocks]:
    """The message for the deployment channel after a successful push."""
    text = (f"Deployed `{record.reference}` — digest `{record.digest}` — pushed by <@{record.requester}> "
            f"(job {record.job_id})")
    blocks: Blocks = [
        _section(f":rocket: *Deployed* `{record.reference}`\nDigest `{record.digest}`"),
        _context(f"pushed by <@{record.requester}> · host `{record.host}` · job `{record.job_id}`"),
    ]
    return text, blocks


def escape(text: str) -> str:
    """Slack's three control characters escaped, so echoed user input cannot mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def reply_body(reply: Reply) -> dict[str, Any]:
    """The HTTP response body for a slash command: always ephemeral.

    Replies echo what the user typed (in error messages), so the whole text is escaped:
    replies never carry intended mentions or links.
    """
    text = escape(reply.text)
    paragraphs = [p for p in text.split("\n\n") if p.strip()] or [text]
    blocks: Blocks = []
    chunk = ""
    for paragraph in paragraphs:
        candidate = f"{chunk}\n\n{paragraph}" if chunk else paragraph
        if len(candidate) > SECTION_LIMIT and chunk:
            blocks.append(_section(chunk))
            chunk = paragraph
        else:
            chunk = candidate
    if chunk:
        blocks.append(_section(chunk))
    return {"response_type": "ephemeral", "text": _clip(text, 3900), "blocks": blocks[:50]}
