"""Deny-by-default policy: who may run which action on which target, where, and who may approve.

A user may run an action only when a grant applies to them — it names their user ID,
``"*"``, or a user group they belong to, and it lists the command's channel (or no
channels) — and gives a role whose ``actions``, ``images``, ``tags``, ``registries`` and
``hosts`` globs all match, and whose ``sources`` match the local image when the command
names one of its own (push's ``--source``, tag's SOURCE: see :func:`source_subject`).
Globs are matched by :func:`workers.kernel.config.patterns.glob_match` (``*`` stops at
``/``, ``**`` does not).  ``help``, ``whoami`` and ``can-i`` are open to everyone.  An
allowed action that an approvals rule protects needs approval before it runs.

User-group membership is read through :class:`Membership`; when it cannot be known the
group's grants do not apply (fail closed), and the decision names the group.  The policy
is pure: it reads the validated access config and the membership it is given, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.core.text import Text, channel, code, codes, join, plain, t, user
from workers.kernel.actions import ACTIONS, DECIDED_AS, MEMBER_COMMANDS, PROTECTABLE_ACTIONS, SELF_SERVICE
from workers.kernel.config import EVERYONE, AccessConfig, ApprovalRule, Grant, Role
from workers.kernel.config.model import ANY_NAME
from workers.kernel.config.patterns import matches_any
from workers.kernel.errors import ConfigError

OPEN_ACTIONS = frozenset(SELF_SERVICE)
"""Actions every user may run, whatever the grants say."""

MEMBER_ACTIONS = frozenset(MEMBER_COMMANDS)
"""Actions every user with a role in the channel may run, whatever that role's ``actions`` are."""


class Membership(Protocol):
    """Who is in a Slack user group, as far as is known right now."""

    def members(self, group: str) -> frozenset[str] | None:
        """The group's member IDs, or None when membership is unknown (the policy fails closed)."""
        ...


class StaticMembership:
    """A fixed membership table (the console shell, tests); groups not listed are unknown."""

    def __init__(self, groups: Mapping[str, Iterable[str]]) -> None:
        self._groups = {group: frozenset(users) for group, users in groups.items()}

    def members(self, group: str) -> frozenset[str] | None:
        return self._groups.get(group)


class DecisionCode(StrEnum):
    ALLOWED = "allowed"
    OPEN = "open"
    NEEDS_APPROVAL = "needs_approval"
    NO_GRANT = "no_grant"
    WRONG_CHANNEL = "wrong_channel"
    GROUP_UNRESOLVED = "group_unresolved"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    NOT_APPROVER = "not_approver"
    SELF_APPROVAL = "self_approval"


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorization: ``rule`` is for logs and audit, ``reason`` for the user.

    ``allowed`` says the user's grants allow the action; it is also True when an
    approvals rule applies (``approval`` is then set and the action must wait for it).
    ``unresolved_groups`` lists groups whose unknown membership kept a grant from applying.
    """

    allowed: bool
    rule: str
    reason: Text
    code: DecisionCode = DecisionCode.ALLOWED
    approval: ApprovalRule | None = None
    unresolved_groups: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    """When allowed: the deciding role's ``sources`` globs, if they do not allow every local image."""

    @property
    def needs_approval(self) -> bool:
        return self.allowed and self.approval is not None


@dataclass(frozen=True)
class GrantMatch:
    """How one grant relates to a user: ``matched_by`` is ``user``, ``everyone`` or ``group``."""

    grant: Grant
    role: Role
    matched_by: str
    group: str | None = None

    @property
    def index(self) -> int:
        return self.grant.index

    @property
    def channels(self) -> tuple[str, ...]:
        return self.grant.channels


@dataclass(frozen=True)
class Identity:
    """What ``whoami`` shows: a user's grants here and elsewhere, and what they may do here."""

    user_id: str
    channel: str | None
    grants: tuple[GrantMatch, ...]
    """Grants that apply to the user in this channel, in file order."""
    elsewhere: tuple[GrantMatch, ...]
    """Grants that name the user but are not valid in this channel."""
    unresolved_groups: tuple[str, ...]
    """Groups named in grants whose membership is unknown right now."""
    actions: tuple[str, ...]
    """The commands the user may run here (with some image and tag)."""
    approvals: tuple[ApprovalRule, ...] = ()
    """Approvals rules protecting an action the user may run here."""

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(match.role.name for match in self.grants))


def _matches(value: str, patterns: Iterable[str]) -> bool:
    # Case-sensitive: `Latest` and `latest` are different tags.  `*` stops at `/`, `**` does not.
    return matches_any(value, patterns)


_IMAGE_ID = re.compile(r"(?:sha256:)?([a-f0-9]{12,64})")
"""An image ID as :func:`workers.kernel.references.check_source` reads one."""


def source_subject(source: str) -> str:
    """What a role's ``sources`` globs are matched against: the local image as written, made canonical.

    An image ID is ``sha256:ID`` however it was typed (so ``sha256:*`` is every ID), and a name
    with neither tag nor digest gets the ``:latest`` Docker reads it with.
    """
    image_id = _IMAGE_ID.fullmatch(source)
    if image_id:
        return f"sha256:{image_id.group(1)}"
    if "@" in source or ":" in source.rpartition("/")[2]:
        return source
    return f"{source}:latest"


VERBS = {
    "promote": "promote to",
    "rollback": "roll back",
    "tags": "list the tags of",
    "inspect": "inspect",
    "history": "see the history of",
}
"""How a sentence says an action that is not a verb of its own (``tags``) or takes a preposition."""


def verb(action: str) -> str:
    return VERBS.get(action, action)


def _target(action: str, image: str | None, tag: str | None, registry: str | None) -> Text:
    if image is None:
        return t("run {} on registry {}", code(action), code(registry)) if registry else t("run {}", code(action))
    return t("{} {}", verb(action), code(f"{image}:{tag}" if tag is not None else image))


def restricts_sources(role: Role) -> bool:
    """Whether ``role`` limits the local images a command may start from."""
    return ANY_NAME not in role.sources


def _subject(action: str, image: str | None, tag: str | None, registry: str | None) -> Text:
    """``push of `app:1```: the request as the subject of a sentence."""
    if image is None:
        return t("{} on registry {}", code(action), code(registry)) if registry else code(action)
    return t("{} of {}", action, code(f"{image}:{tag}" if tag is not None else image))


def describe_approvers(rule: ApprovalRule) -> Text:
    """``admin or @U0BOSS``: role names as they are, user IDs as mentions."""
    return join(" or ", (user(name) if name in rule.approver_users else plain(name) for name in rule.approvers))


def channels_text(channels: Iterable[str]) -> Text:
    """Channel mentions, comma-separated."""
    return join(", ", (channel(channel_id) for channel_id in channels))


@dataclass(frozen=True)
class _Evaluation:
    """One grant weighed for one user: does it name them, is it valid here, or is a group unknown."""

    grant: Grant
    role: Role
    matched_by: str | None
    group: str | None
    unknown_groups: tuple[str, ...]
    channel_ok: bool

    @property
    def applies(self) -> bool:
        return self.matched_by is not None and self.channel_ok

    def as_match(self) -> GrantMatch:
        return GrantMatch(self.grant, self.role, self.matched_by or "", self.group)


class Policy:
    """Answers "may this user do this, here?" and "may this user approve that?"."""

    def __init__(self, access: AccessConfig, membership: Membership | None = None) -> None:
        problems = [
            f"access.grants[{grant.index}].role: no role `{grant.role}`"
            for grant in access.grants
            if grant.role not in access.roles
        ]
        problems += [
            f"access.grants[{grant.index}]: names no users and no user groups"
            for grant in access.grants
            if not grant.users and not grant.usergroups
        ]
        if problems:
            # Config loading already rejects these; a hand-built AccessConfig must not slip past.
            raise ConfigError(problems)
        self._access = access
        self._membership = membership

    def _evaluate(self, user_id: str, channel: str | None) -> list[_Evaluation]:
        """Every grant with how it relates to the user; group memberships are read once per call."""
        evaluations = []
        for grant in self._access.grants:
            matched_by: str | None = None
            group: str | None = None
            unknown: list[str] = []
            if user_id in grant.users:
                matched_by = "user"
            elif EVERYONE in grant.users:
                matched_by = "everyone"
            else:
                for name in grant.usergroups:
                    members = self._membership.members(name) if self._membership is not None else None
                    if members is None:
                        unknown.append(name)
                    elif user_id in members:
                        matched_by, group = "group", name
                        break
            evaluations.append(
                _Evaluation(
                    grant=grant,
                    role=self._access.roles[grant.role],
                    matched_by=matched_by,
                    group=group,
                    # A group that did not decide anything is not worth reporting.
                    unknown_groups=() if matched_by else tuple(unknown),
                    channel_ok=not grant.channels or channel in grant.channels,
                )
            )
        return evaluations

    @staticmethod
    def _role_allows(
        role: Role,
        action: str,
        image: str | None,
        tag: str | None,
        registry: str | None,
        host: str | None,
        source: str | None = None,
    ) -> bool:
        # A glob is consulted only when the request has that part (login has no image or tag,
        # a plain push no local image of its own).
        checks = (
            (action, role.actions),
            (image, role.images),
            (tag, role.tags),
            (registry, role.registries),
            (host, role.hosts),
            (None if source is None else source_subject(source), role.sources),
        )
        return all(value is None or _matches(value, patterns) for value, patterns in checks)

    def decide(
        self,
        user_id: str,
        action: str,
        image: str | None = None,
        tag: str | None = None,
        *,
        channel: str | None = None,
        registry: str | None = None,
        host: str | None = None,
        source: str | None = None,
    ) -> Decision:
        """Whether ``user_id`` may run ``action`` on ``image:tag`` (None for ``login``) from ``channel``.

        ``source`` is the local image the command names of its own (push's ``--source``, tag's
        SOURCE), None when it has none.
        """
        target = _target(action, image, tag, registry)
        if action in OPEN_ACTIONS:
            return Decision(True, f"{action} is open to everyone", t("you may {}", target), DecisionCode.OPEN)
        evaluations = self._evaluate(user_id, channel)
        if action in MEMBER_ACTIONS:
            return self._member_decision(action, target, evaluations)
        decided_as = DECIDED_AS.get(action, action)
        would_allow = [
            item for item in evaluations
            if self._role_allows(item.role, decided_as, image, tag, registry, host, source)
        ]
        granted = next((item for item in would_allow if item.applies), None)
        if granted is not None:
            return self._allowed(granted, action, image, tag, registry, target)
        if source is not None:
            target_only = next((item for item in evaluations if item.applies
                                and self._role_allows(item.role, action, image, tag, registry, host)), None)
            if target_only is not None:
                return self._source_denied(target_only, target, source)
        return self._denied(target, evaluations, would_allow)

    def _member_decision(self, action: str, target: Text, evaluations: list[_Evaluation]) -> Decision:
        """Allowed when any grant gives the user a role here; else why not (no grant, another channel, a group)."""
        granted = next((item for item in evaluations if item.applies), None)
        if granted is None:
            return self._denied(target, evaluations, evaluations)
        return Decision(True, f"{action} is open to every role (grants[{granted.grant.index}] role "
                              f"{granted.role.name})", t("you may {} (every role may)", target))

    @staticmethod
    def _source_denied(item: _Evaluation, target: Text, source: str) -> Decision:
        """The target is allowed, the local image it would start from is not."""
        role = item.role
        return Decision(
            False,
            f"grants[{item.grant.index}] role {role.name}: source not allowed",
            t("you may not {} from {}: your role {} allows that target, but its `sources` ({}) do not match {}",
              target, code(source), role.name, codes(role.sources), code(source_subject(source))),
            DecisionCode.SOURCE_NOT_ALLOWED,
        )

    @staticmethod
    def _denied(target: Text, evaluations: list[_Evaluation], would_allow: list[_Evaluation]) -> Decision:
        """Why no grant allows it: valid elsewhere, an unresolved group, no grant, or no role that allows it."""
        unresolved = tuple(
            dict.fromkeys(group for item in would_allow if item.channel_ok for group in item.unknown_groups)
        )
        elsewhere = [item for item in would_allow if item.matched_by is not None and not item.channel_ok]
        if elsewhere:
            where = channels_text(dict.fromkeys(c for item in elsewhere for c in item.grant.channels))
            return Decision(
                False,
                f"grants[{elsewhere[0].grant.index}] role {elsewhere[0].role.name} not valid in this channel",
                t("you may not {}: your grant is not valid in this channel; it is valid in {}", target, where),
                DecisionCode.WRONG_CHANNEL,
                unresolved_groups=unresolved,
            )
        if unresolved:
            groups = ", ".join(unresolved)
            noun = "user group" if len(unresolved) == 1 else "user groups"
            return Decision(
                False,
                f"user group unresolved: {groups}",
                t("you may not {}: {} {} could not be resolved, so its grant does not apply (fail closed); "
                  "try again in a few minutes or ask a regops admin", target, noun, groups),
                DecisionCode.GROUP_UNRESOLVED,
                unresolved_groups=unresolved,
            )
        applying = [item for item in evaluations if item.applies]
        if not applying:
            return Decision(
                False,
                "no grant matches",
                t("you may not {}: no grant gives you any role; ask a regops admin for access", target),
                DecisionCode.NO_GRANT,
            )
        roles = ", ".join(dict.fromkeys(item.role.name for item in applying))
        return Decision(
            False,
            f"no role allows it (roles: {roles})",
            t("you may not {}: no grant gives you a role that allows it (your roles: {})", target, roles),
            DecisionCode.NO_GRANT,
        )

    def _allowed(
        self,
        granted: _Evaluation,
        action: str,
        image: str | None,
        tag: str | None,
        registry: str | None,
        target: Text,
    ) -> Decision:
        rule = f"grants[{granted.grant.index}] role {granted.role.name}"
        # Reading the registry changes nothing, and a subscription is no job: no approvals rule holds them up,
        # not even `actions: ["*"]`.
        approval = self._approval_for(action, image, tag) if action in PROTECTABLE_ACTIONS else None
        sources = granted.role.sources if restricts_sources(granted.role) else ()
        if approval is None:
            return Decision(True, rule, t("you may {} (role {})", target, granted.role.name), sources=sources)
        noun = "approval" if approval.required == 1 else "approvals"
        return Decision(
            True,
            f"{rule}; {approval.name}",
            t("{} needs {} {} from {} ({})", _subject(action, image, tag, registry), approval.required, noun,
              describe_approvers(approval), approval.name),
            DecisionCode.NEEDS_APPROVAL,
            approval=approval,
            sources=sources,
        )

    def _approval_for(self, action: str, image: str | None, tag: str | None) -> ApprovalRule | None:
        for rule in self._access.approvals:
            if (
                _matches(action, rule.actions)
                and (image is None or _matches(image, rule.images))
                and (tag is None or _matches(tag, rule.tags))
            ):
                return rule
        return None

    def may_approve(
        self, user_id: str, rule: ApprovalRule, *, requester: str, channel: str | None = None
    ) -> Decision:
        """Whether ``user_id`` may approve (or reject) a request ``requester`` made under ``rule``."""
        if user_id == requester:
            return Decision(
                False,
                f"{rule.name} self-approval refused",
                t("you requested it; another approver must approve"),
                DecisionCode.SELF_APPROVAL,
            )
        if rule.roles is None:  # rebuilt from stored fields: its approvers are split by the roles defined here
            rule = rule.with_roles(self._access.roles)
        if user_id in rule.approver_users:
            return Decision(True, f"{rule.name} approver {user_id}", t("you may approve it (listed by user ID)"))
        evaluations = [item for item in self._evaluate(user_id, channel) if item.role.name in rule.approver_roles]
        granted = next((item for item in evaluations if item.applies), None)
        if granted is not None:
            return Decision(
                True,
                f"{rule.name} approver via grants[{granted.grant.index}] role {granted.role.name}",
                t("you may approve it (role {})", granted.role.name),
            )
        who = describe_approvers(rule)
        why = Text()
        elsewhere = [item for item in evaluations if item.matched_by is not None]
        unresolved = tuple(
            dict.fromkeys(group for item in evaluations if item.channel_ok for group in item.unknown_groups)
        )
        if elsewhere:
            where = channels_text(dict.fromkeys(c for item in elsewhere for c in item.grant.channels))
            why = t("; your grant of role {} is valid only in {}", elsewhere[0].role.name, where)
        elif unresolved:
            why = t("; user group {} could not be resolved (fail closed)", ", ".join(unresolved))
        return Decision(
            False,
            f"{rule.name} not an approver",
            t("you may not approve it: only {} may ({}){}", who, rule.name, why),
            DecisionCode.NOT_APPROVER,
            unresolved_groups=unresolved,
        )

    def permitted_actions(self, user_id: str, channel: str | None = None) -> tuple[str, ...]:
        """The commands ``user_id`` may run in ``channel`` on some target, in the grammar's order."""
        return self._permitted(self._evaluate(user_id, channel))

    @staticmethod
    def _permitted(evaluations: Iterable[_Evaluation]) -> tuple[str, ...]:
        applying = [item for item in evaluations if item.applies]
        patterns = [pattern for item in applying for pattern in item.role.actions]
        return tuple(
            action for action in ACTIONS
            if action in OPEN_ACTIONS or (action in MEMBER_ACTIONS and applying)
            or _matches(DECIDED_AS.get(action, action), patterns)
        )

    def whoami(self, user_id: str, channel: str | None = None) -> Identity:
        """The user's roles here with the grants that gave them, grants valid elsewhere, and more."""
        evaluations = self._evaluate(user_id, channel)

        actions = self._permitted(evaluations)
        protected = [action for action in actions if action not in OPEN_ACTIONS]
        return Identity(
            user_id=user_id,
            channel=channel,
            grants=tuple(item.as_match() for item in evaluations if item.applies),
            elsewhere=tuple(
                item.as_match() for item in evaluations if item.matched_by is not None and not item.channel_ok
            ),
            unresolved_groups=tuple(
                dict.fromkeys(group for item in evaluations for group in item.unknown_groups)
            ),
            actions=actions,
            approvals=tuple(
                rule for rule in self._access.approvals if any(_matches(a, rule.actions) for a in protected)
            ),
        )
