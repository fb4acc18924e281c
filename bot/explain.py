"""User-facing self-service answers: ``whoami`` and ``can-i`` as Slack mrkdwn.

Only rendering: the policy decides, this module says it in words.  The texts name
roles, grants, channels, groups and approvals rules, never a secret (there is none in
an :class:`~bot.access.Identity` or a :class:`~bot.access.Decision`).
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.access import OPEN_ACTIONS, Decision, DecisionCode, GrantMatch, Identity, describe_approvers
from bot.commands import ACTIONS
from bot.config import EVERYONE, ApprovalRule, Role, format_duration


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
        f"{rule.required} {noun} from {describe_approvers(rule.approvers)}; "
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
