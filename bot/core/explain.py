"""User-facing answers as Slack mrkdwn: ``whoami``, ``can-i``, and ``status``, ``jobs``, ``hosts``.

Only rendering: the policy decides, this module says it in words.  The texts name
roles, grants, channels, groups and approvals rules, never a secret (there is none in
an :class:`~bot.core.access.Identity` or a :class:`~bot.core.access.Decision`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.core.access import OPEN_ACTIONS, Decision, DecisionCode, GrantMatch, Identity, describe_approvers
from bot.core.approvals import ApprovalView
from bot.core.jobs import HostView
from bot.core.outcomes import duration_text, failure_text, outcome_text
from workers.kernel.actions import ACTIONS
from workers.kernel.config import EVERYONE, ApprovalRule, Role, format_duration
from workers.kernel.jobs import EventType, JobRecord, JobState
from workers.kernel.times import iso_time


def _code(value: str) -> str:
    return "`" + value.replace("`", "'") + "`"


def _codes(values: Iterable[str]) -> str:
    return ", ".join(_code(value) for value in values)


def _channels(channels: Iterable[str]) -> str:
    return ", ".join(f"<#{channel}>" for channel in channels)


def _how(match: GrantMatch) -> str:
    if match.matched_by == "group" and match.group:
        return f"as a member of user group {_code(match.group)}"
    if match.matched_by == "everyone":
        return f"to everyone ({_code(EVERYONE)})"
    return "to you by user ID"


def _where(match: GrantMatch) -> str:
    return f"valid in {_channels(match.channels)}" if match.channels else "valid in every channel"


def _scope(role: Role) -> str:
    """What the role allows, leaving out the parts that allow everything."""
    parts = [f"actions {_codes(role.actions)}"]
    for noun, globs in (
        ("images", role.images),
        ("tags", role.tags),
        ("registries", role.registries),
        ("hosts", role.hosts),
    ):
        if tuple(globs) != ("*",):
            parts.append(f"{noun} {_codes(globs)}")
    return "; ".join(parts)


def _approval_terms(rule: ApprovalRule) -> str:
    noun = "approval" if rule.required == 1 else "distinct approvals"
    return (
        f"{rule.required} {noun} from {describe_approvers(rule)}; "
        f"a request expires after {format_duration(rule.expires_in)} ({rule.name})"
    )


def whoami_text(identity: Identity) -> str:
    """Your roles here, the grants that gave them, where they apply, what you may do."""
    here = f"in <#{identity.channel}>" if identity.channel else "here"
    lines = [f"*Your access* (<@{identity.user_id}> {here})"]
    if identity.grants:
        lines.append(f"Roles {here}: {', '.join(f'*{name}*' for name in identity.roles)}")
        for match in identity.grants:
            lines.append(
                f"• *{match.role.name}* from grants[{match.index}], given {_how(match)}, {_where(match)}: "
                f"{_scope(match.role)}"
            )
    else:
        lines.append(f"You have no role {here}: no grant applies to you in this channel.")
    if identity.elsewhere:
        lines.append("Grants that name you but are not valid in this channel:")
        for match in identity.elsewhere:
            lines.append(
                f"• *{match.role.name}* from grants[{match.index}], given {_how(match)}, "
                f"valid only in {_channels(match.channels)}"
            )
    if identity.unresolved_groups:
        lines.append(
            f"User groups that could not be resolved right now: {_codes(identity.unresolved_groups)}. "
            "Their grants do not apply until they can be (fail closed); try again in a few minutes."
        )
    # Actions a role may name before the grammar has their command are not worth offering yet.
    jobs = [action for action in identity.actions if action in ACTIONS and action not in OPEN_ACTIONS]
    everyone = [action for action in identity.actions if action in OPEN_ACTIONS]
    if jobs:
        lines.append(f"You may run {here}: {_codes(jobs)}, and {_codes(everyone)} (open to everyone).")
    else:
        lines.append(
            f"You may run only {_codes(everyone)} (open to everyone). Ask a regops admin for access."
        )
    for rule in identity.approvals:
        lines.append(
            f"Needs approval: {_codes(rule.actions)} of images {_codes(rule.images)} with tags "
            f"{_codes(rule.tags)}: {_approval_terms(rule)}. You cannot approve your own request."
        )
    return "\n".join(lines)


def can_i_text(decision: Decision, action: str, target: str) -> str:
    """``Yes``/``No`` for ``action`` on ``target`` (a reference, or the registry for login), with the rule."""
    shown = target if "`" in target else _code(target)
    if decision.code is DecisionCode.OPEN:
        return f"Yes: {_code(action)} is open to everyone."
    if not decision.allowed:
        return f"No: {decision.reason}. Deciding rule: {_code(decision.rule)}."
    approval = decision.approval
    if approval is None:
        return f"Yes: you may {action} {shown}, no approval needed. Deciding rule: {_code(decision.rule)}."
    return (
        f"Yes, with approval: you may {action} {shown} (deciding rule: {_code(decision.rule)}), "
        f"but it runs only after {_approval_terms(approval)}. You cannot approve your own request."
    )


# ---- jobs and hosts ------------------------------------------------------------------------


def _when(at: float | None) -> str:
    return iso_time(at) if at is not None else "—"


def status_text(record: JobRecord, approval: ApprovalView | None, now: float) -> str:
    """``status JOB``: state, requester, reference, host, timings, progress, outcome and approval."""
    lines = [f"*Job `{record.job_id}`* — {outcome_text(record)}"]
    lines.append(f"• requested by <@{record.requester}> · host `{record.host}` · registry `{record.registry}`")
    if record.reference:
        lines.append(f"• reference `{record.reference}`" + (f" from `{record.source}`" if record.source else ""))
    timings = [f"queued {_when(record.queued_at)}"]
    if record.started_at is not None:
        timings.append(f"started {_when(record.started_at)}")
    if record.finished_at is not None:
        timings.append(f"finished {_when(record.finished_at)}")
    if record.duration is not None:
        timings.append(f"took {duration_text(record.duration)}")
    elif record.started_at is not None and record.finished_at is None:
        timings.append(f"running for {duration_text(now - record.started_at)}")
    elif record.queued_at is not None and record.finished_at is None:
        timings.append(f"waiting for {duration_text(now - record.queued_at)}")
    lines.append("• " + ", ".join(timings))
    if record.progress is not None and record.state == JobState.RUNNING:
        lines.append(f"• progress {record.progress}%")
    if record.state == EventType.SUCCEEDED.value:
        lines.append("• outcome: succeeded" + (f", digest `{record.digest}`" if record.digest else ""))
    elif record.state == EventType.FAILED.value:
        lines.append(f"• outcome: failed — {failure_text(record)}")
    elif record.state == JobState.CANCELLED:
        by = record.extra.get("cancelled_by")
        lines.append("• outcome: cancelled" + (f" by <@{by}>" if by else ""))
    if approval is not None:
        parts = [f"approval {approval.state} ({approval.rule}, {approval.required} needed)"]
        if approval.approved_by:
            parts.append(f"approved by {', '.join(f'<@{u}>' for u in approval.approved_by)}")
        if approval.rejected_by:
            parts.append(f"rejected by <@{approval.rejected_by}>")
        lines.append("• " + "; ".join(parts))
    elif record.extra.get("approved_by"):
        lines.append(f"• approved by {', '.join(f'<@{u}>' for u in record.extra['approved_by'].split(','))}")
    return "\n".join(lines)


def jobs_text(records: Sequence[JobRecord], *, mine: bool, image: str | None, limit: int) -> str:
    """``jobs``: one line a job, newest first."""
    scope = "your" if mine else "recent"
    about = f" of `{image}`" if image else ""
    if not records:
        return f"No {scope} jobs{about} to show."
    lines = [f"*{len(records)} {scope} job(s){about}*, newest first (at most {limit}):"]
    for record in records:
        lines.append(f"• `{record.job_id}` {outcome_text(record)} — <@{record.requester}>, host `{record.host}`, "
                     f"queued {_when(record.queued_at)}")
    return "\n".join(lines)


def hosts_text(hosts: Sequence[HostView]) -> str:
    """``hosts``: each Docker host with its live workers, queue length and running job."""
    if not hosts:
        return "No Docker host you may see is configured."
    lines = ["*Docker hosts*"]
    for host in hosts:
        workers = (f"{len(host.live_workers)} live worker(s) ({_codes(host.live_workers)})" if host.live_workers
                   else "no live worker")
        running = ("running " + ", ".join(f"`{r.job_id}` ({_target_of(r)})" for r in host.running)
                   if host.running else "nothing running")
        lines.append(f"• `{host.name}`: {workers}; {host.queued} job(s) queued; {running}")
    return "\n".join(lines)


def _target_of(record: JobRecord) -> str:
    return f"{record.action} of `{record.reference}`" if record.reference else record.action
