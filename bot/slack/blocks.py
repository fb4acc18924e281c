"""Replies and job states as Slack messages: mrkdwn text and Block Kit blocks.

Every Slack message carries a fallback ``text`` that holds the key facts on its own
(full reference, digest or failure reason), as notifications and screen readers
show only that.
"""

from __future__ import annotations

from typing import Any

from bot.core.approvals import ApprovalView
from bot.core.outcomes import duration_text, outcome_details, outcome_text, state_word
from bot.core.replies import Reply
from bot.core.text import code, join, t, user
from bot.slack.identities import USER_ID
from bot.slack.mrkdwn import mrkdwn
from workers.kernel.actions import REGISTRY_QUEUE
from workers.kernel.jobs import ACTIVE_STATES, JobRecord, JobState

APPROVE_ACTION = "regops_approve"
REJECT_ACTION = "regops_reject"
CANCEL_ACTION = "regops_cancel"

SECTION_LIMIT = 3000
"""Slack's limit on a section block's text."""

Blocks = list[dict[str, Any]]

_EMOJI: dict[str, str] = {
    JobState.QUEUED: ":hourglass_flowing_sand:",
    JobState.RUNNING: ":arrows_counterclockwise:",
    JobState.SUCCEEDED: ":white_check_mark:",
    JobState.FAILED: ":x:",
    JobState.AWAITING_APPROVAL: ":lock:",
    JobState.REJECTED: ":no_entry_sign:",
    JobState.EXPIRED: ":hourglass:",
    JobState.CANCELLED: ":heavy_multiplication_x:",
}


def _approvers(names: tuple[str, ...]) -> str:
    return mrkdwn(join(", ", (user(name) if USER_ID.fullmatch(name) else code(name) for name in names)))


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
        lines.append(f"rejected by {mrkdwn(user(approval.rejected_by))}")
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
    approval_lines = _approval_lines(record, approval)
    text = mrkdwn(t("{} (requested by {}, job {})", outcome_text(record), user(record.requester), record.job_id))
    if approval_lines:
        text += " — " + "; ".join(approval_lines)
    emoji = _EMOJI.get(record.state, ":grey_question:")
    blocks: Blocks = [_section(f"{emoji} {mrkdwn(t('*{}*: {}', state_word(record), outcome_details(record)))}")]
    if record.state == JobState.RUNNING and record.progress is not None:
        blocks.append(_section(f"`{progress_bar(record.progress)}` {record.progress}%"))
    awaiting = JobState.AWAITING_APPROVAL
    if approval is not None and approval.state == awaiting and record.state == awaiting:
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
    details = [mrkdwn(t("requested by {}", user(record.requester))), *approval_lines,
               mrkdwn(t("registry queue") if record.host == REGISTRY_QUEUE else t("host {}", code(record.host))),
               mrkdwn(t("job {}", code(record.job_id)))]
    took = duration_text(record.duration)
    if took and record.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        details.append(f"took {took}")
    blocks.append(_context(" · ".join(details)))
    return text, blocks


def deployment_notification(record: JobRecord) -> tuple[str, Blocks]:
    """The message for the deployment channel after a successful push, promote or rollback."""
    reference, digest, by = code(record.reference), code(record.digest), user(record.requester)
    verb = {"promote": "promoted", "rollback": "rolled back"}.get(record.action, "pushed")
    if record.action == "promote":
        headline = t("*Promoted* {} to {}\nDigest {}", code(record.source), reference, digest)
        text = t("Promoted {} to {} — digest {} — by {} (job {})", code(record.source), reference, digest, by,
                 record.job_id)
    elif record.action == "rollback":
        headline = t("*Rolled back* {}\nNow at digest {}", reference, digest)
        text = t("Rolled back {} — now digest {} — by {} (job {})", reference, digest, by, record.job_id)
    else:
        headline = t("*Deployed* {}\nDigest {}", reference, digest)
        text = t("Deployed {} — digest {} — pushed by {} (job {})", reference, digest, by, record.job_id)
    where = t("registry queue") if record.host == REGISTRY_QUEUE else t("host {}", code(record.host))
    blocks: Blocks = [
        _section(_EMOJI_OF_ACTION.get(record.action, ":rocket:") + " " + mrkdwn(headline)),
        _context(mrkdwn(t("{} by {} · {} · job {}", verb, by, where, code(record.job_id)))),
    ]
    return mrkdwn(text), blocks


_EMOJI_OF_ACTION = {"push": ":rocket:", "promote": ":arrow_up:", "rollback": ":rewind:"}


def reply_body(reply: Reply) -> dict[str, Any]:
    """The HTTP response body for a slash command: always ephemeral.

    Every piece of the reply is escaped by the renderer, so what the person typed cannot mention
    or link, while the mentions regops means (a user, a channel) arrive as mentions.
    """
    text = mrkdwn(reply.text)
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
