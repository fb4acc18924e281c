"""The deny-by-default policy (bot.access)."""

from __future__ import annotations

import pytest

from bot.access import Decision, Policy
from bot.config import AccessConfig, Grant, Role, parse_config
from bot.errors import ConfigError

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
    assert decision.reason.startswith(
        "you may not push `web/app:1.0`: no grant gives you a role that allows it"
    )


def test_a_login_denial_names_the_action() -> None:
    decision = Policy(AccessConfig()).decide("U0DEV1", "login")
    assert decision == Decision(
        False,
        "no grant matches",
        "you may not run `login`: no grant gives you any role; ask a regops admin for access",
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
