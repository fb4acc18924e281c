"""The deny-by-default policy (bot.core.access)."""

from __future__ import annotations

import functools
import random
import re

import pytest

from bot.core.access import Decision, DecisionCode, Policy, StaticMembership, source_subject
from bot.core.text import markup
from tests.support.texts import slack
from workers.kernel.config import AccessConfig, ApprovalRule, Grant, Role, parse_config
from workers.kernel.config.patterns import _pieces, glob_match
from workers.kernel.errors import ConfigError

ACCESS = AccessConfig(
    roles={
        "admin": Role("admin", actions=("*",)),
        "deployer": Role(
            "deployer", actions=("push", "pull", "tag", "login"), images=("centos7-*",), tags=("*",)
        ),
        "releaser": Role("releaser", actions=("push",), images=("web/*",), tags=("1.*", "rc-?")),
        "puller": Role("puller", actions=("pu[l]l",)),
    },
    grants=(
        Grant("admin", ("U0ADMIN",)),
        Grant("deployer", ("U0DEV1", "U0DEV2")),
        Grant("releaser", ("U0DEV2", "U0REL")),
        Grant("puller", ("*",)),
    ),
)


@pytest.mark.parametrize(
    ("user", "action", "image", "tag", "allowed", "rule"),
    [
        ("U0ADMIN", "push", "anything", "latest", True, "grants[0] role admin"),
        ("U0ADMIN", "login", None, None, True, "grants[0] role admin"),
        ("U0DEV1", "push", "centos7-elasticsearch", "latest", True, "grants[1] role deployer"),
        ("U0DEV1", "tag", "centos7-x", "1.0", True, "grants[1] role deployer"),
        ("U0DEV1", "login", None, None, True, "grants[1] role deployer"),
        ("U0DEV1", "push", "web/app", "1.0", False, "no role allows it (roles: deployer, puller)"),
        ("U0DEV1", "push", "Centos7-x", "1", False, "no role allows it (roles: deployer, puller)"),
        ("U0DEV2", "push", "web/app", "1.2", True, "grants[2] role releaser"),
        ("U0DEV2", "push", "web/app", "rc-1", True, "grants[2] role releaser"),
        ("U0REL", "push", "web/app", "rc-10", False, "no role allows it (roles: releaser, puller)"),
        ("U0REL", "push", "web/app", "latest", False, "no role allows it (roles: releaser, puller)"),
        ("U0REL", "pull", "web/app", "latest", True, "grants[3] role puller"),
        ("U0REL", "tag", "web/app", "1.0", False, "no role allows it (roles: releaser, puller)"),
        ("U0STRANGER", "pull", "centos7-x", "latest", True, "grants[3] role puller"),
        ("U0STRANGER", "push", "centos7-x", "latest", False, "no role allows it (roles: puller)"),
        ("U0STRANGER", "login", None, None, False, "no role allows it (roles: puller)"),
        ("U0STRANGER", "help", None, None, True, "help is open to everyone"),
        # Globs match case-sensitively on every platform.
        ("u0admin", "push", "app", "1", False, "no role allows it (roles: puller)"),
    ],
)
def test_policy_table(
    user: str, action: str, image: str | None, tag: str | None, allowed: bool, rule: str
) -> None:
    decision = Policy(ACCESS).decide(user, action, image, tag)
    assert decision.allowed is allowed
    assert decision.rule == rule


def test_a_denial_names_the_action_and_the_image_and_tag() -> None:
    decision = Policy(ACCESS).decide("U0DEV1", "push", "web/app", "1.0")
    assert slack(decision.reason).startswith(
        "you may not push `web/app:1.0`: no grant gives you a role that allows it"
    )


def test_a_login_denial_names_the_action() -> None:
    decision = Policy(AccessConfig()).decide("U0DEV1", "login")
    assert decision == Decision(
        False,
        "no grant matches",
        markup("you may not run `login`: no grant gives you any role; ask a regops admin for access"),
        DecisionCode.NO_GRANT,
    )


def test_login_does_not_consult_image_or_tag_globs() -> None:
    access = AccessConfig(
        roles={"narrow": Role("narrow", actions=("login",), images=("nothing-matches",), tags=("never",))},
        grants=(Grant("narrow", ("U1",)),),
    )
    assert Policy(access).decide("U1", "login").allowed is True
    assert Policy(access).decide("U1", "login", "other", "tag").allowed is False


@pytest.mark.parametrize(
    ("action", "image", "tag"),
    [("push", "a", "b"), ("pull", "a", "b"), ("tag", "a", "b"), ("login", None, None)],
)
def test_an_empty_access_section_denies_everything_but_help(
    action: str, image: str | None, tag: str | None
) -> None:
    policy = Policy(AccessConfig())
    assert policy.decide("U0ADMIN", action, image, tag).allowed is False
    assert policy.decide("U0ADMIN", "help").allowed is True


def test_a_role_without_images_or_tags_defaults_to_everything() -> None:
    config = parse_config(
        {
            "registries": {
                "main": {"server": "r.example", "namespace": "ns", "username": "u", "password_env": "P"}
            },
            "hosts": ["h"],
            "access": {
                "roles": {"pusher": {"actions": ["push"]}},
                "grants": [{"role": "pusher", "users": ["U1"]}],
            },
        }
    )
    policy = Policy(config.access)
    assert policy.decide("U1", "push", "any/image", "any-tag").allowed is True
    assert policy.decide("U1", "pull", "any/image", "any-tag").allowed is False


def test_a_grant_for_an_undefined_role_is_refused_up_front() -> None:
    access = AccessConfig(roles={}, grants=(Grant("ghost", ("U1",)),))
    with pytest.raises(ConfigError) as info:
        Policy(access)
    assert info.value.problems == ("access.grants[0].role: no role `ghost`",)


def test_the_first_matching_grant_decides() -> None:
    access = AccessConfig(
        roles={"a": Role("a", actions=("push",)), "b": Role("b", actions=("*",))},
        grants=(Grant("a", ("U1",)), Grant("b", ("U1",))),
    )
    assert Policy(access).decide("U1", "push", "x", "y").rule == "grants[0] role a"
    assert Policy(access).decide("U1", "pull", "x", "y").rule == "grants[1] role b"


# --- Users, "*", user groups, channels, registry/host globs, approvals (issue 3) ---------------

ROLES = {
    "admin": Role("admin", actions=("*",)),
    "deployer": Role(
        "deployer",
        actions=("push", "pull", "tag", "login", "status", "jobs", "cancel"),
        images=("centos7-*", "web/*"),
    ),
    "reader": Role("reader", actions=("pull", "status", "jobs")),
    "api-pusher": Role(
        "api-pusher", actions=("push",), images=("api/*",), registries=("prod-*",), hosts=("build-*",)
    ),
    "oncall": Role("oncall", actions=("push", "pull")),
}

TEAM = AccessConfig(
    roles=ROLES,
    grants=(
        Grant("admin", users=("U0ADMIN",)),
        Grant("deployer", usergroups=("S0DEVOPS",), channels=("C0OPS", "C0DEPLOYS")),
        Grant("reader", users=("*",)),
        Grant("api-pusher", users=("U0REL",)),
        Grant("oncall", usergroups=("S0ONCALL",), channels=("C0ONCALL",)),
        Grant("deployer", users=("U0CONTRACTOR",), channels=("C0SANDBOX",)),
    ),
    approvals=(
        ApprovalRule(tags=("latest", "prod-*"), approvers=("admin",), expires_in=1800),
        ApprovalRule(
            images=("web/*",),
            actions=("push", "tag"),
            approvers=("admin", "U0BOSS"),
            required=2,
            expires_in=3600,
        ),
        ApprovalRule(images=("api/*",), approvers=("deployer",)),
    ),
)

MEMBERSHIP = StaticMembership({"S0DEVOPS": {"U0DEV1", "U0DEV2"}})
"""S0DEVOPS is known; S0ONCALL is not (its membership cannot be resolved)."""

ALLOWED, OPEN, APPROVAL = DecisionCode.ALLOWED, DecisionCode.OPEN, DecisionCode.NEEDS_APPROVAL
NO_GRANT, WRONG_CHANNEL, UNRESOLVED = (
    DecisionCode.NO_GRANT,
    DecisionCode.WRONG_CHANNEL,
    DecisionCode.GROUP_UNRESOLVED,
)


@pytest.mark.parametrize(
    ("user", "action", "image", "tag", "where", "code", "rule"),
    [
        # By user ID; "*"; open actions.
        ("U0ADMIN", "push", "anything", "1.0", {}, ALLOWED, "grants[0] role admin"),
        ("U0ADMIN", "hosts", None, None, {"channel": "C0ANY"}, ALLOWED, "grants[0] role admin"),
        ("U0STRANGER", "pull", "centos7-x", "1.0", {"channel": "C0ANY"}, ALLOWED, "grants[2] role reader"),
        (
            "U0STRANGER",
            "push",
            "centos7-x",
            "1.0",
            {"channel": "C0ANY"},
            NO_GRANT,
            "no role allows it (roles: reader)",
        ),
        (
            "U0STRANGER",
            "login",
            None,
            None,
            {"registry": "main"},
            NO_GRANT,
            "no role allows it (roles: reader)",
        ),
        ("U0STRANGER", "help", None, None, {}, OPEN, "help is open to everyone"),
        ("U0STRANGER", "whoami", None, None, {"channel": "C0ANY"}, OPEN, "whoami is open to everyone"),
        ("U0STRANGER", "can-i", None, None, {}, OPEN, "can-i is open to everyone"),
        # A known member of a group, in a listed channel, in another, and with no channel at all.
        ("U0DEV1", "push", "centos7-x", "1.0", {"channel": "C0OPS"}, ALLOWED, "grants[1] role deployer"),
        (
            "U0DEV2",
            "tag",
            "web/app",
            "1.0",
            {"channel": "C0DEPLOYS"},
            APPROVAL,
            "grants[1] role deployer; approvals[1]",
        ),
        (
            "U0DEV1",
            "login",
            None,
            None,
            {"channel": "C0OPS", "registry": "main"},
            ALLOWED,
            "grants[1] role deployer",
        ),
        (
            "U0DEV1",
            "push",
            "centos7-x",
            "1.0",
            {"channel": "C0RANDOM"},
            WRONG_CHANNEL,
            "grants[1] role deployer not valid in this channel",
        ),
        (
            "U0DEV1",
            "push",
            "centos7-x",
            "1.0",
            {},
            WRONG_CHANNEL,
            "grants[1] role deployer not valid in this channel",
        ),
        # Outside the grant's channels, another grant that needs no channel still applies.
        ("U0DEV1", "pull", "centos7-x", "1.0", {"channel": "C0RANDOM"}, ALLOWED, "grants[2] role reader"),
        # A known non-member gets nothing from the group's grant.
        (
            "U0OUTSIDER",
            "tag",
            "centos7-x",
            "1.0",
            {"channel": "C0OPS"},
            NO_GRANT,
            "no role allows it (roles: reader)",
        ),
        # A group whose membership is unknown: fail closed, naming it — only where it could apply.
        (
            "U0ONCALL",
            "push",
            "centos7-x",
            "1.0",
            {"channel": "C0ONCALL"},
            UNRESOLVED,
            "user group unresolved: S0ONCALL",
        ),
        (
            "U0ONCALL",
            "push",
            "centos7-x",
            "1.0",
            {"channel": "C0OPS"},
            NO_GRANT,
            "no role allows it (roles: reader)",
        ),
        ("U0ONCALL", "pull", "centos7-x", "1.0", {"channel": "C0ONCALL"}, ALLOWED, "grants[2] role reader"),
        # A grant limited to one channel, by user ID.
        (
            "U0CONTRACTOR",
            "push",
            "centos7-x",
            "1.0",
            {"channel": "C0SANDBOX"},
            ALLOWED,
            "grants[5] role deployer",
        ),
        (
            "U0CONTRACTOR",
            "push",
            "centos7-x",
            "1.0",
            {"channel": "C0OPS"},
            WRONG_CHANNEL,
            "grants[5] role deployer not valid in this channel",
        ),
        # Registry and host globs: consulted when given, not when absent.
        (
            "U0REL",
            "push",
            "api/x",
            "1.0",
            {"registry": "prod-eu", "host": "build-1"},
            APPROVAL,
            "grants[3] role api-pusher; approvals[2]",
        ),
        ("U0REL", "push", "api/x", "1.0", {}, APPROVAL, "grants[3] role api-pusher; approvals[2]"),
        (
            "U0REL",
            "push",
            "api/x",
            "1.0",
            {"registry": "staging", "host": "build-1"},
            NO_GRANT,
            "no role allows it (roles: reader, api-pusher)",
        ),
        (
            "U0REL",
            "push",
            "api/x",
            "1.0",
            {"registry": "prod-eu", "host": "deploy-1"},
            NO_GRANT,
            "no role allows it (roles: reader, api-pusher)",
        ),
        (
            "U0REL",
            "push",
            "web/x",
            "1.0",
            {"registry": "prod-eu"},
            NO_GRANT,
            "no role allows it (roles: reader, api-pusher)",
        ),
        # Approvals: the first matching rule; a tag it does not protect; an action it does not protect.
        ("U0ADMIN", "push", "anything", "latest", {}, APPROVAL, "grants[0] role admin; approvals[0]"),
        ("U0ADMIN", "push", "web/app", "prod-2", {}, APPROVAL, "grants[0] role admin; approvals[0]"),
        ("U0ADMIN", "push", "web/app", "1.0", {}, APPROVAL, "grants[0] role admin; approvals[1]"),
        ("U0ADMIN", "push", "anything", "latest-rc", {}, ALLOWED, "grants[0] role admin"),
        ("U0ADMIN", "pull", "anything", "latest", {}, ALLOWED, "grants[0] role admin"),
        ("U0ADMIN", "tag", "anything", "latest", {}, ALLOWED, "grants[0] role admin"),
        ("U0ADMIN", "login", None, None, {"registry": "main"}, ALLOWED, "grants[0] role admin"),
        # A denied request needs no approval, even on a protected tag.
        ("U0STRANGER", "push", "anything", "latest", {}, NO_GRANT, "no role allows it (roles: reader)"),
    ],
)
def test_team_policy_table(
    user: str,
    action: str,
    image: str | None,
    tag: str | None,
    where: dict[str, str],
    code: DecisionCode,
    rule: str,
) -> None:
    decision = Policy(TEAM, MEMBERSHIP).decide(user, action, image, tag, **where)
    assert (decision.code, decision.rule) == (code, rule)
    assert decision.allowed is (code in (ALLOWED, OPEN, APPROVAL))
    assert decision.needs_approval is (code is APPROVAL)
    assert (decision.approval is not None) is (code is APPROVAL)
    if image is not None and code is not OPEN:
        # Every answer names the action and the image:tag.
        assert f"`{image}:{tag}`" in slack(decision.reason)
        assert action in slack(decision.reason)


@pytest.mark.parametrize(
    ("user", "channel", "fragments"),
    [
        (
            "U0DEV1",
            "C0RANDOM",
            [
                "you may not push `centos7-x:1.0`",
                "your grant is not valid in this channel",
                "<#C0OPS>, <#C0DEPLOYS>",
            ],
        ),
        ("U0CONTRACTOR", "C0OPS", ["your grant is not valid in this channel; it is valid in <#C0SANDBOX>"]),
        (
            "U0ONCALL",
            "C0ONCALL",
            ["user group S0ONCALL could not be resolved, so its grant does not apply (fail closed)"],
        ),
        (
            "U0OUTSIDER",
            "C0OPS",
            ["you may not push `centos7-x:1.0`: no grant gives you a role that allows it"],
        ),
    ],
)
def test_a_denial_says_why(user: str, channel: str, fragments: list[str]) -> None:
    decision = Policy(TEAM, MEMBERSHIP).decide(user, "push", "centos7-x", "1.0", channel=channel)
    assert decision.allowed is False
    for fragment in fragments:
        assert fragment in slack(decision.reason)


def test_an_unresolved_group_is_listed_only_when_it_mattered() -> None:
    policy = Policy(TEAM, MEMBERSHIP)
    assert policy.decide("U0ONCALL", "push", "a", "1", channel="C0ONCALL").unresolved_groups == ("S0ONCALL",)
    # Allowed anyway by another grant, or the group's grant would not allow it: not reported.
    assert policy.decide("U0ONCALL", "pull", "a", "1", channel="C0ONCALL").unresolved_groups == ()
    assert policy.decide("U0ONCALL", "tag", "a", "1", channel="C0ONCALL").unresolved_groups == ()


@pytest.mark.parametrize(
    ("membership", "user", "code", "groups"),
    [
        (None, "U0DEV1", UNRESOLVED, ("S0DEVOPS",)),  # no Membership at all: every group is unknown
        (StaticMembership({}), "U0DEV1", UNRESOLVED, ("S0DEVOPS",)),  # this group unknown right now
        (StaticMembership({"S0DEVOPS": set()}), "U0DEV1", NO_GRANT, ()),  # known, and empty
        (StaticMembership({"S0DEVOPS": {"U0DEV1"}}), "U0DEV1", ALLOWED, ()),
        (StaticMembership({"S0DEVOPS": {"U0DEV1"}}), "U0DEV2", NO_GRANT, ()),
    ],
)
def test_group_membership_fails_closed(
    membership: StaticMembership | None, user: str, code: DecisionCode, groups: tuple[str, ...]
) -> None:
    decision = Policy(TEAM, membership).decide(user, "tag", "centos7-x", "1.0", channel="C0OPS")
    assert (decision.code, decision.unresolved_groups) == (code, groups)
    assert decision.allowed is (code is ALLOWED)


def test_membership_is_asked_each_time_so_a_refresh_takes_effect() -> None:
    class Flipping:
        def __init__(self) -> None:
            self.known: frozenset[str] | None = None

        def members(self, group: str) -> frozenset[str] | None:
            return self.known

    membership = Flipping()
    policy = Policy(TEAM, membership)
    assert policy.decide("U0DEV1", "tag", "centos7-x", "1", channel="C0OPS").code is UNRESOLVED
    membership.known = frozenset({"U0DEV1"})
    assert policy.decide("U0DEV1", "tag", "centos7-x", "1", channel="C0OPS").code is ALLOWED
    membership.known = frozenset()
    assert policy.decide("U0DEV1", "tag", "centos7-x", "1", channel="C0OPS").code is NO_GRANT


def test_a_listed_user_does_not_depend_on_the_group_lookup() -> None:
    class Exploding:
        def members(self, group: str) -> frozenset[str] | None:
            raise AssertionError("a user matched by ID or * must not need a group lookup")

    access = AccessConfig(
        roles={"r": Role("r", actions=("push",))}, grants=(Grant("r", users=("U1",), usergroups=("S1",)),)
    )
    assert Policy(access, Exploding()).decide("U1", "push", "a", "b").allowed is True


@pytest.mark.parametrize(
    ("image", "tag", "index", "reason"),
    [
        ("centos7-x", "latest", 0, "push of `centos7-x:latest` needs 1 approval from admin (approvals[0])"),
        (
            "web/app",
            "1.0",
            1,
            "push of `web/app:1.0` needs 2 approvals from admin or <@U0BOSS> (approvals[1])",
        ),
        ("api/x", "1.0", 2, "push of `api/x:1.0` needs 1 approval from deployer (approvals[2])"),
    ],
)
def test_an_approval_carries_its_rule(image: str, tag: str, index: int, reason: str) -> None:
    decision = Policy(TEAM, MEMBERSHIP).decide("U0ADMIN", "push", image, tag)
    assert slack(decision.reason) == reason
    assert decision.approval == TEAM.approvals[index]
    assert decision.approval is not None
    expected = [(1, ("admin",), 1800), (2, ("admin", "U0BOSS"), 3600), (1, ("deployer",), 1800)][index]
    assert (decision.approval.required, decision.approval.approvers, decision.approval.expires_in) == expected


def test_an_approvals_rule_may_protect_login() -> None:
    access = AccessConfig(
        roles={"admin": Role("admin", actions=("*",))},
        grants=(Grant("admin", users=("U1",)),),
        approvals=(ApprovalRule(images=("web/*",), actions=("login",), approvers=("admin",)),),
    )
    decision = Policy(access).decide("U1", "login", registry="main")
    assert decision.code is APPROVAL
    assert slack(decision.reason) == "`login` on registry `main` needs 1 approval from admin (approvals[0])"
    assert Policy(access).decide("U1", "push", "web/a", "1").code is ALLOWED


@pytest.mark.parametrize(
    ("action", "image", "tag"),
    [
        ("push", "a", "latest"),
        ("pull", "a", "b"),
        ("tag", "a", "b"),
        ("login", None, None),
        ("status", None, None),
    ],
)
def test_empty_access_allows_only_the_self_service_commands(
    action: str, image: str | None, tag: str | None
) -> None:
    policy = Policy(AccessConfig(), StaticMembership({}))
    decision = policy.decide("U0ADMIN", action, image, tag, channel="C0OPS")
    assert (decision.allowed, decision.code, decision.rule) == (False, NO_GRANT, "no grant matches")
    assert policy.permitted_actions("U0ADMIN", "C0OPS") == ("whoami", "can-i", "help")
    for open_action in ("help", "whoami", "can-i"):
        assert policy.decide("U0ADMIN", open_action).code is OPEN


# --- may_approve -------------------------------------------------------------------------------

SELF, NOT_APPROVER = DecisionCode.SELF_APPROVAL, DecisionCode.NOT_APPROVER


@pytest.mark.parametrize(
    ("user", "rule", "requester", "channel", "membership", "allowed", "code", "decision_rule"),
    [
        # Approver by role (via a grant by user ID), and by user ID.
        (
            "U0ADMIN",
            0,
            "U0DEV1",
            None,
            MEMBERSHIP,
            True,
            ALLOWED,
            "approvals[0] approver via grants[0] role admin",
        ),
        ("U0BOSS", 1, "U0DEV1", "C0OPS", MEMBERSHIP, True, ALLOWED, "approvals[1] approver U0BOSS"),
        (
            "U0ADMIN",
            1,
            "U0DEV1",
            "C0OPS",
            MEMBERSHIP,
            True,
            ALLOWED,
            "approvals[1] approver via grants[0] role admin",
        ),
        # Never the requester, even an approver.
        ("U0ADMIN", 0, "U0ADMIN", None, MEMBERSHIP, False, SELF, "approvals[0] self-approval refused"),
        ("U0BOSS", 1, "U0BOSS", None, MEMBERSHIP, False, SELF, "approvals[1] self-approval refused"),
        # Not an approver: a role not listed, or nobody at all.
        ("U0DEV1", 0, "U0ADMIN", "C0OPS", MEMBERSHIP, False, NOT_APPROVER, "approvals[0] not an approver"),
        ("U0STRANGER", 1, "U0DEV1", "C0OPS", MEMBERSHIP, False, NOT_APPROVER, "approvals[1] not an approver"),
        # Approver through a user group, where the grant is valid, and where it is not.
        (
            "U0DEV2",
            2,
            "U0DEV1",
            "C0OPS",
            MEMBERSHIP,
            True,
            ALLOWED,
            "approvals[2] approver via grants[1] role deployer",
        ),
        ("U0DEV2", 2, "U0DEV1", "C0RANDOM", MEMBERSHIP, False, NOT_APPROVER, "approvals[2] not an approver"),
        ("U0OUTSIDER", 2, "U0DEV1", "C0OPS", MEMBERSHIP, False, NOT_APPROVER, "approvals[2] not an approver"),
        # The group cannot be resolved: fail closed.
        (
            "U0DEV2",
            2,
            "U0DEV1",
            "C0OPS",
            StaticMembership({}),
            False,
            NOT_APPROVER,
            "approvals[2] not an approver",
        ),
        # A requester in the approvers' group is still refused.
        ("U0DEV1", 2, "U0DEV1", "C0OPS", MEMBERSHIP, False, SELF, "approvals[2] self-approval refused"),
    ],
)
def test_may_approve_table(
    user: str,
    rule: int,
    requester: str,
    channel: str | None,
    membership: StaticMembership,
    allowed: bool,
    code: DecisionCode,
    decision_rule: str,
) -> None:
    decision = Policy(TEAM, membership).may_approve(
        user, TEAM.approvals[rule], requester=requester, channel=channel
    )
    assert (decision.allowed, decision.code, decision.rule) == (allowed, code, decision_rule)


@pytest.mark.parametrize(
    ("user", "rule", "channel", "membership", "fragments", "groups"),
    [
        ("U0ADMIN", 0, None, MEMBERSHIP, ["you requested it; another approver must approve"], ()),
        ("U0STRANGER", 1, None, MEMBERSHIP, ["only admin or <@U0BOSS> may (approvals[1])"], ()),
        (
            "U0DEV2",
            2,
            "C0RANDOM",
            MEMBERSHIP,
            ["only deployer may", "valid only in <#C0OPS>, <#C0DEPLOYS>"],
            (),
        ),
        (
            "U0DEV2",
            2,
            "C0OPS",
            StaticMembership({}),
            ["user group S0DEVOPS could not be resolved"],
            ("S0DEVOPS",),
        ),
    ],
)
def test_a_refused_approval_says_why(
    user: str,
    rule: int,
    channel: str | None,
    membership: StaticMembership,
    fragments: list[str],
    groups: tuple[str, ...],
) -> None:
    requester = user if fragments[0].startswith("you requested") else "U0REQ"
    decision = Policy(TEAM, membership).may_approve(
        user, TEAM.approvals[rule], requester=requester, channel=channel
    )
    for fragment in fragments:
        assert fragment in slack(decision.reason)
    assert decision.unresolved_groups == groups


def test_an_approval_rule_built_from_stored_fields_works() -> None:
    # The approvals flow rebuilds the rule from what it stored; only index, approvers and required matter.
    rule = ApprovalRule(index=7, approvers=["admin"], required=1)  # type: ignore[arg-type]
    decision = Policy(TEAM).may_approve("U0ADMIN", rule, requester="U0DEV1")
    assert decision.rule == "approvals[7] approver via grants[0] role admin"


# --- permitted_actions and whoami ---------------------------------------------------------------

EVERYTHING = ("push", "pull", "tag", "login", "promote", "delete", "rollback", "tags", "inspect", "history", "whoami",
              "can-i", "help", "status", "jobs", "cancel", "hosts", "subscribe", "unsubscribe", "subscriptions", "freeze", "unfreeze", "freezes")


@pytest.mark.parametrize(
    ("user", "channel", "membership", "actions"),
    [
        ("U0ADMIN", None, MEMBERSHIP, EVERYTHING),
        (
            "U0DEV1",
            "C0OPS",
            MEMBERSHIP,
            ("push", "pull", "tag", "login", "whoami", "can-i", "help", "status", "jobs", "cancel", "subscriptions",
             "freezes"),
        ),
        # `subscriptions` and `freezes` only list: every role may (the `reader` grant applies to everyone here).
        ("U0DEV1", "C0RANDOM", MEMBERSHIP, ("pull", "whoami", "can-i", "help", "status", "jobs", "subscriptions",
                                            "freezes")),
        ("U0DEV1", "C0OPS", None, ("pull", "whoami", "can-i", "help", "status", "jobs", "subscriptions", "freezes")),
        ("U0REL", "C0ANY", MEMBERSHIP, ("push", "pull", "whoami", "can-i", "help", "status", "jobs", "subscriptions",
                                        "freezes")),
        ("U0STRANGER", None, MEMBERSHIP, ("pull", "whoami", "can-i", "help", "status", "jobs", "subscriptions",
                                          "freezes")),
    ],
)
def test_permitted_actions(
    user: str, channel: str | None, membership: StaticMembership | None, actions: tuple[str, ...]
) -> None:
    assert Policy(TEAM, membership).permitted_actions(user, channel) == actions


def test_permitted_actions_follow_action_globs() -> None:
    access = AccessConfig(roles={"p": Role("p", actions=("pu*",))}, grants=(Grant("p", users=("U1",)),))
    assert Policy(access).permitted_actions("U1") == ("push", "pull", "whoami", "can-i", "help", "subscriptions",
                                                        "freezes")
    assert Policy(access).permitted_actions("U2") == ("whoami", "can-i", "help")  # no role: no listing either


def test_whoami_in_a_channel_where_the_group_grant_applies() -> None:
    identity = Policy(TEAM, MEMBERSHIP).whoami("U0DEV1", "C0OPS")
    assert identity.roles == ("deployer", "reader")
    assert [(m.index, m.role.name, m.matched_by, m.group, m.channels) for m in identity.grants] == [
        (1, "deployer", "group", "S0DEVOPS", ("C0OPS", "C0DEPLOYS")),
        (2, "reader", "everyone", None, ()),
    ]
    assert identity.elsewhere == ()
    assert identity.unresolved_groups == ("S0ONCALL",)
    assert identity.actions == Policy(TEAM, MEMBERSHIP).permitted_actions("U0DEV1", "C0OPS")
    # push and tag are protected by rules 0-2 (default push, and web/* push+tag).
    assert [rule.index for rule in identity.approvals] == [0, 1, 2]


def test_whoami_elsewhere_lists_grants_not_valid_here() -> None:
    identity = Policy(TEAM, MEMBERSHIP).whoami("U0DEV1", "C0RANDOM")
    assert identity.roles == ("reader",)
    assert [(m.index, m.role.name, m.matched_by) for m in identity.elsewhere] == [(1, "deployer", "group")]
    assert identity.approvals == ()


def test_whoami_by_user_id_and_no_roles() -> None:
    policy = Policy(TEAM, MEMBERSHIP)
    admin = policy.whoami("U0ADMIN")
    assert [(m.index, m.matched_by) for m in admin.grants] == [(0, "user"), (2, "everyone")]
    nobody = Policy(AccessConfig()).whoami("U0X", "C0OPS")
    assert (nobody.roles, nobody.grants, nobody.actions) == ((), (), ("whoami", "can-i", "help"))


def test_grants_and_rules_are_numbered_by_position() -> None:
    access = AccessConfig(
        roles={"r": Role("r", actions=("push",))},
        grants=(Grant("r", users=("U1",)), Grant("r", users=("U2",))),
        approvals=(ApprovalRule(approvers=("r",)), ApprovalRule(index=5, approvers=("U1",))),
    )
    assert [grant.index for grant in access.grants] == [0, 1]
    assert [rule.index for rule in access.approvals] == [0, 1]
    assert Policy(access).decide("U2", "push", "a", "b").rule == "grants[1] role r; approvals[0]"
    assert access.usergroups() == frozenset()
    assert TEAM.usergroups() == frozenset({"S0DEVOPS", "S0ONCALL"})


def test_a_grant_without_users_or_groups_is_refused_up_front() -> None:
    access = AccessConfig(roles={"r": Role("r", actions=("push",))}, grants=(Grant("r"),))
    with pytest.raises(ConfigError) as info:
        Policy(access)
    assert info.value.problems == ("access.grants[0]: names no users and no user groups",)


@pytest.mark.parametrize(
    "kwargs",
    [{"approvers": ()}, {"approvers": ("a",), "required": 0}, {"approvers": ("a",), "expires_in": 0}],
)
def test_an_approval_rule_that_could_never_be_met_cannot_be_built(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ApprovalRule(**kwargs)  # type: ignore[arg-type]


# --- globs: `*` stops at `/`, `**` crosses it (issue 9, item 7) ------------------------------------


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        ("centos7-x", "centos7-*", True),
        ("centos7-x/other-team/anything", "centos7-*", False),  # the attack run's case
        ("centos7-x/other-team/anything", "centos7-**", True),
        ("web/app", "web/*", True),
        ("web/app/x", "web/*", False),
        ("web/app/x", "web/**", True),
        ("web/app", "web/**/app", True),  # `**/` as a component may match no component
        ("web/a/b/app", "web/**/app", True),
        ("webapp", "web/**/app", False),
        ("a/b/app", "**/app", True),
        ("app", "**/app", True),
        ("team/app", "*", False),
        ("team/app", "**", True),
        ("a/c", "a?c", False),
        ("abc", "a?c", True),
        ("b", "[abc]", True),
        ("/", "[!a]", False),
        ("x", "[!a]", True),
        ("Latest", "latest", False),  # case-sensitive
        ("a.b", "a.b", True),
        ("axb", "a.b", False),  # `.` is itself
        ("[x", "[x", True),  # an unclosed `[` is itself
        ("sha256:0123", "sha256:*", True),
        ("a-b-c-d", "*-*-*-*", True),
        ("a-b-c/d", "*-*-*-*", False),
        ("x-/y-z", "**-*-z", False),
        ("a/x/ab", "**a*b", True),
    ],
)
def test_glob_table(value: str, pattern: str, expected: bool) -> None:
    assert glob_match(value, pattern) is expected


def _reference_match(value: str, pattern: str) -> bool:
    """The rules spelled out, by brute force over the pattern's pieces (for short inputs only)."""
    pieces = _pieces(pattern)

    @functools.cache
    def rest(i: int, j: int) -> bool:
        if j == len(pieces):
            return i == len(value)
        piece = pieces[j]
        if piece.kind == "one":
            return i < len(value) and re.fullmatch(piece.regex, value[i], re.DOTALL) is not None and rest(i + 1, j + 1)
        if piece.kind == "directories":  # nothing, or anything ending in `/`
            return rest(i, j + 1) or any(value[k - 1] == "/" and rest(k, j + 1) for k in range(i + 1, len(value) + 1))
        ends = range(i, len(value) + 1)
        if piece.kind == "star":
            return any("/" not in value[i:k] and rest(k, j + 1) for k in ends)
        return any(rest(k, j + 1) for k in ends)

    return rest(0, 0)


@pytest.mark.parametrize("seed", range(40))
def test_the_matcher_agrees_with_the_rules_on_random_globs(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        pattern = "".join(rng.choice(["a", "b", "/", "-", "*", "**", "?", "[ab]", "[!a]", "**/"])
                          for _ in range(rng.randint(0, 6)))
        value = "".join(rng.choice("ab/-") for _ in range(rng.randint(0, 8)))
        assert glob_match(value, pattern) is _reference_match(value, pattern), (value, pattern)


def test_image_globs_in_roles_stop_at_a_slash() -> None:
    access = AccessConfig(
        roles={"team": Role("team", actions=("push",), images=("centos7-*", "web/**")),
               "everything": Role("everything", actions=("pull",))},
        grants=(Grant("team", ("U1",)), Grant("everything", ("U1",))),
        approvals=(ApprovalRule(approvers=("U9",), tags=("latest",)),),
    )
    policy = Policy(access)
    assert not policy.decide("U1", "push", "centos7-x/other-team/anything", "1").allowed
    assert policy.decide("U1", "push", "centos7-x", "1").allowed
    assert policy.decide("U1", "push", "web/a/b", "1").allowed
    # A role and an approvals rule without `images` still mean every image, `/` or not.
    assert policy.decide("U1", "pull", "any/team/image", "1").allowed
    assert policy.decide("U1", "push", "web/a/b", "latest").needs_approval


# --- sources: what --source may name (issue 9, item 8) --------------------------------------------

HEX = "0123456789ab" + "c" * 52
SOURCE_ACCESS = AccessConfig(
    roles={
        "builder": Role("builder", actions=("push", "tag"), images=("centos7-*",), sources=("centos7-*", "sha256:*")),
        "free": Role("free", actions=("push", "tag"), images=("web/**",)),
    },
    grants=(Grant("builder", ("U0DEV",)), Grant("free", ("U0WEB",))),
)


@pytest.mark.parametrize(
    ("user", "action", "source", "allowed", "code"),
    [
        ("U0DEV", "push", None, True, DecisionCode.ALLOWED),  # a plain push starts from IMAGE:TAG itself
        ("U0DEV", "push", "centos7-build:dev", True, DecisionCode.ALLOWED),
        ("U0DEV", "push", "centos7-build", True, DecisionCode.ALLOWED),  # matched as centos7-build:latest
        ("U0DEV", "push", "0123456789ab", True, DecisionCode.ALLOWED),  # an ID is sha256:ID
        ("U0DEV", "tag", f"sha256:{HEX}", True, DecisionCode.ALLOWED),
        ("U0DEV", "push", "other-team/secret:1", False, DecisionCode.SOURCE_NOT_ALLOWED),
        ("U0DEV", "tag", "centos7-x/other:1", False, DecisionCode.SOURCE_NOT_ALLOWED),
        ("U0DEV", "push", "registry.example.com/centos7-x:1", False, DecisionCode.SOURCE_NOT_ALLOWED),
        # Without `sources`, a role takes any local image, as before.
        ("U0WEB", "push", "other-team/secret:1", True, DecisionCode.ALLOWED),
    ],
)
def test_sources_restrict_the_local_image(user: str, action: str, source: str | None, allowed: bool,
                                          code: DecisionCode) -> None:
    image = "web/app" if user == "U0WEB" else "centos7-app"
    decision = Policy(SOURCE_ACCESS).decide(user, action, image, "1", source=source)
    assert (decision.allowed, decision.code) == (allowed, code)
    if not allowed:
        reason = slack(decision.reason)
        assert source in reason and "`sources`" in reason and "`centos7-*`, `sha256:*`" in reason
        assert decision.rule == "grants[0] role builder: source not allowed"


def test_an_allowed_decision_names_the_sources_that_limit_it() -> None:
    policy = Policy(SOURCE_ACCESS)
    assert policy.decide("U0DEV", "push", "centos7-app", "1").sources == ("centos7-*", "sha256:*")
    assert policy.decide("U0WEB", "push", "web/app", "1").sources == ()


def test_source_subject() -> None:
    assert source_subject("0123456789ab") == "sha256:0123456789ab"
    assert source_subject(f"sha256:{HEX}") == f"sha256:{HEX}"
    assert source_subject("centos7-a") == "centos7-a:latest"
    assert source_subject("localhost:5000/a") == "localhost:5000/a:latest"
    assert source_subject("localhost:5000/a:1") == "localhost:5000/a:1"
    assert source_subject(f"a@sha256:{HEX}") == f"a@sha256:{HEX}"
