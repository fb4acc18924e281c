"""Self-service answers (bot.core.explain): whoami and can-i texts say who, why and what next."""

from __future__ import annotations

import pytest

from bot.core.access import Decision, DecisionCode, Policy, StaticMembership
from bot.core.explain import can_i_text, whoami_text
from bot.core.text import code, markup, t
from tests.support.texts import slack
from workers.kernel.config import AccessConfig, ApprovalRule, Grant, Role

ACCESS = AccessConfig(
    roles={
        "admin": Role("admin", actions=("*",)),
        "deployer": Role(
            "deployer", actions=("push", "pull", "tag"), images=("centos7-*",), hosts=("build-*",)
        ),
        "reader": Role("reader", actions=("pull",)),
    },
    grants=(
        Grant("admin", users=("U0ADMIN",)),
        Grant("deployer", usergroups=("S0DEVOPS",), channels=("C0OPS", "C0DEPLOYS")),
        Grant("reader", users=("*",)),
        Grant("deployer", usergroups=("S0ONCALL",)),
    ),
    approvals=(
        ApprovalRule(tags=("latest", "prod-*"), approvers=("admin", "U0BOSS"), required=2, expires_in=1800),
    ),
)
POLICY = Policy(ACCESS, StaticMembership({"S0DEVOPS": {"U0DEV1"}}))
REFERENCE = "dockerhub.example.com:5100/com.example.namespace/centos7-x"


@pytest.mark.parametrize(
    ("user", "channel", "present", "absent"),
    [
        (
            "U0DEV1",
            "C0OPS",
            [
                "*Your access* (<@U0DEV1> in <#C0OPS>)",
                "Roles in <#C0OPS>: *deployer*, *reader*",
                "*deployer* from grants[1], given as a member of user group `S0DEVOPS`, valid in <#C0OPS>, <#C0DEPLOYS>",
                "actions `push`, `pull`, `tag`; images `centos7-*`; hosts `build-*`",
                "*reader* from grants[2], given to everyone (`*`), valid in every channel: actions `pull`",
                ("You may run in <#C0OPS>: `push`, `pull`, `tag`, `subscriptions`, `freezes`, and `whoami`, `can-i`, `help` "
                 "(open to everyone)."),
                (
                    "Needs approval: `push`, `promote`, `rollback`, `delete` of images `**` with tags `latest`, "
                    "`prod-*`: 2 distinct approvals from admin or <@U0BOSS>; a request expires after 30m "
                    "(approvals[0])"
                ),
                "User groups that could not be resolved right now: `S0ONCALL`",
            ],
            ["not valid in this channel"],
        ),
        (
            "U0DEV1",
            "C0RANDOM",
            [
                "Roles in <#C0RANDOM>: *reader*",
                "Grants that name you but are not valid in this channel:",
                "*deployer* from grants[1], given as a member of user group `S0DEVOPS`, valid only in <#C0OPS>, <#C0DEPLOYS>",
                "You may run in <#C0RANDOM>: `pull`, `subscriptions`, `freezes`, and",
            ],
            [
                "Needs approval",
                "*deployer* from grants[1], given as a member of user group `S0DEVOPS`, valid in",
            ],
        ),
        (
            "U0ADMIN",
            None,
            [
                "(<@U0ADMIN> here)",
                "*admin* from grants[0], given to you by user ID, valid in every channel: actions `*`",
                ("You may run here: `push`, `pull`, `tag`, `login`, `promote`, `delete`, `rollback`, `tags`, "
                 "`inspect`, `history`, `status`, `jobs`, `cancel`, `hosts`, `subscribe`, `unsubscribe`, "
                 "`subscriptions`, `freeze`, `unfreeze`, `freezes`, and `whoami`, `can-i`, `help`"),
            ],
            ["actions `*`; images"],
        ),
    ],
)
def test_whoami_text(user: str, channel: str | None, present: list[str], absent: list[str]) -> None:
    text = slack(whoami_text(POLICY.whoami(user, channel)))
    for fragment in present:
        assert fragment in text, text
    for fragment in absent:
        assert fragment not in text, text


def test_whoami_text_without_any_role() -> None:
    text = slack(whoami_text(Policy(AccessConfig()).whoami("U0NEW", "C0OPS")))
    assert "You have no role in <#C0OPS>: no grant applies to you in this channel." in text
    assert (
        "You may run only `whoami`, `can-i`, `help` (open to everyone). Ask a regops admin for access."
        in text
    )
    assert "could not be resolved" not in text


@pytest.mark.parametrize(
    ("user", "action", "tag", "channel", "expected"),
    [
        (
            "U0DEV1",
            "push",
            "1.0",
            "C0OPS",
            f"Yes: you may push `{REFERENCE}:1.0`, no approval needed. Deciding rule: `grants[1] role deployer`.",
        ),
        (
            "U0DEV1",
            "push",
            "latest",
            "C0OPS",
            (
                f"Yes, with approval: you may push `{REFERENCE}:latest` (deciding rule: "
                "`grants[1] role deployer; approvals[0]`), but it runs only after 2 distinct approvals from "
                "admin or <@U0BOSS>; a request expires after 30m (approvals[0]). You cannot approve your own request."
            ),
        ),
        (
            "U0DEV1",
            "push",
            "1.0",
            "C0RANDOM",
            (
                "No: you may not push `centos7-x:1.0`: your grant is not valid in this channel; it is valid in "
                "<#C0OPS>, <#C0DEPLOYS>. Deciding rule: `grants[1] role deployer not valid in this channel`."
            ),
        ),
        (
            "U0STRANGER",
            "tag",
            "1.0",
            "C0RANDOM",
            (
                "No: you may not tag `centos7-x:1.0`: user group S0ONCALL could not be resolved, so its grant does "
                "not apply (fail closed); try again in a few minutes or ask a regops admin. "
                "Deciding rule: `user group unresolved: S0ONCALL`."
            ),
        ),
    ],
)
def test_can_i_text(user: str, action: str, tag: str, channel: str, expected: str) -> None:
    decision = POLICY.decide(user, action, "centos7-x", tag, channel=channel)
    assert slack(can_i_text(decision, action, f"{REFERENCE}:{tag}")) == expected


@pytest.mark.parametrize(
    ("decision", "start"),
    [
        (
            Decision(True, "help is open to everyone", markup("you may run `help`"), DecisionCode.OPEN),
            "Yes: `help` is open",
        ),
        (Decision(True, "grants[0] role admin", markup("you may run `login`")), "Yes: you may login `registry main`"),
        (
            Decision(False, "no grant matches", markup("you may not run `login`"), DecisionCode.NO_GRANT),
            "No: you may not run",
        ),
    ],
)
def test_can_i_text_starts_with_the_answer(decision: Decision, start: str) -> None:
    action = "help" if decision.code is DecisionCode.OPEN else "login"
    assert slack(can_i_text(decision, action, "registry main")).startswith(start)


def test_can_i_text_keeps_a_target_that_is_already_formatted() -> None:
    decision = Decision(True, "grants[0] role admin", markup("you may run `login`"))
    assert "registry `main`" in slack(can_i_text(decision, "login", t("registry {}", code("main"))))


@pytest.mark.parametrize(
    ("action", "target", "start"),
    [
        ("promote", f"{REFERENCE}:prod", f"Yes: you may promote to `{REFERENCE}:prod`, no approval needed."),
        ("rollback", f"{REFERENCE}:prod", f"Yes: you may roll back `{REFERENCE}:prod`,"),
        ("delete", f"{REFERENCE}:old", f"Yes: you may delete `{REFERENCE}:old`,"),
        ("tags", REFERENCE, f"Yes: you may list the tags of `{REFERENCE}`,"),
        ("inspect", f"{REFERENCE}:1.0", f"Yes: you may inspect `{REFERENCE}:1.0`,"),
        ("history", f"{REFERENCE}:prod", f"Yes: you may see the history of `{REFERENCE}:prod`,"),
    ],
)
def test_can_i_text_says_the_registry_actions_in_words(action: str, target: str, start: str) -> None:
    decision = POLICY.decide("U0ADMIN", action, "centos7-x", "1.0", channel="C0OPS")
    assert slack(can_i_text(decision, action, target)).startswith(start)


def test_whoami_offers_the_registry_commands_a_role_allows() -> None:
    access = AccessConfig(
        roles={"deployer": Role("deployer", actions=("push", "promote", "rollback", "tags", "inspect", "history"))},
        grants=(Grant("deployer", users=("U0DEV1",)),),
    )
    text = slack(whoami_text(Policy(access).whoami("U0DEV1", "C0OPS")))
    assert ("You may run in <#C0OPS>: `push`, `promote`, `rollback`, `tags`, `inspect`, `history`, `subscriptions`, "
            "`freezes`, and `whoami`, `can-i`, `help` (open to everyone).") in text
    assert "`delete`" not in text
