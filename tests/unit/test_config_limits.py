"""The ``limits:`` section of the config: defaults when absent, `off`, each problem at its key path, the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.slack.identities import SLACK_IDENTITIES
from workers.kernel.config import Limits, load_config, parse_config
from workers.kernel.errors import ConfigError


def _base(limits: object = None, roles: object = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "registries": {"main": {"server": "dockerhub.example.com:5100", "services_hostname": "namespace.example.com",
                                "username": "user001@namespace.example.com", "password_env": "REGISTRY_PASSWORD"}},
        "hosts": ["build-1"],
        "access": {"roles": roles if roles is not None else {"admin": {"actions": ["*"]},
                                                                "ops": {"actions": ["push"]}},
                   "grants": [{"role": "admin", "users": ["U0ADMIN"]}]},
    }
    if limits is not None:
        data["limits"] = limits
    return data


def _problems(data: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, SLACK_IDENTITIES)
    return info.value.problems


def test_defaults_when_the_section_or_a_key_is_absent() -> None:
    assert parse_config(_base()).limits == Limits(30, 20, 200, ("admin",))
    assert Limits() == Limits(commands_per_minute=30, queued_per_user=20, queued_per_host=200, exempt_roles=("admin",))
    assert parse_config(_base({"queued_per_user": 5})).limits == Limits(30, 5, 200, ("admin",))
    assert parse_config(_base({})).limits == Limits()


def test_the_documented_yaml_loads_with_off_and_an_empty_exempt_list(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text("""\
registries:
  main: {server: dockerhub.example.com:5100, services_hostname: namespace.example.com, username: u, password_env: P}
hosts: [build-1]
access:
  roles: {admin: {actions: ["*"]}, ops: {actions: [push]}}
limits: {commands_per_minute: 60, queued_per_user: off, queued_per_host: "off", exempt_roles: []}
""")
    # A bare `off` is YAML 1.1's false: both spellings turn a limit off.
    assert load_config(path).limits == Limits(60, None, None, ())


def test_exempt_roles_name_defined_roles() -> None:
    assert parse_config(_base({"exempt_roles": ["ops", "admin"]})).limits.exempt_roles == ("ops", "admin")


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ("30", ("limits: must be a mapping with keys `commands_per_minute`, `queued_per_user`, `queued_per_host`, "
               "`exempt_roles`; got a string")),
        ({"commands_per_minut": 3}, "limits.commands_per_minut: unknown key; did you mean `commands_per_minute`?"),
        ({"commands_per_minute": 0},
         ("limits.commands_per_minute: must be at least 1; got 0; give a whole number of commands, at least 1, "
         "or `off` for no limit")),
        ({"queued_per_user": -2}, "limits.queued_per_user: must be at least 1; got -2"),
        ({"queued_per_host": "200"}, ("limits.queued_per_host: must be a whole number or `off`; got a string; "
                                     "give a whole number of jobs")),
        ({"queued_per_host": 2.5}, "limits.queued_per_host: must be a whole number or `off`; got a number"),
        ({"queued_per_user": True}, "limits.queued_per_user: must be a whole number or `off`; got true/false"),
        ({"commands_per_minute": None}, "limits.commands_per_minute: must be a whole number or `off`; got nothing"),
        ({"exempt_roles": "admin"},
         "limits.exempt_roles: must be a list of role names, like [admin] ([] for nobody); got a string"),
        ({"exempt_roles": ["admn"]},
         ("limits.exempt_roles[0]: no role `admn` under access.roles; did you mean `admin`? defined roles: "
         "`admin`, `ops`")),
        ({"exempt_roles": ["admin", 3]},
         "limits.exempt_roles[1]: must be a role name defined under access.roles; got a number"),
    ],
)
def test_each_problem_names_its_key_path(limits: object, problem: str) -> None:
    problems = _problems(_base(limits))
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems


def test_every_problem_of_the_section_is_reported_at_once() -> None:
    problems = _problems(_base({"commands_per_minute": 0, "queued_per_user": "x", "exempt_roles": ["nobody"]}))
    assert [p.split(":", 1)[0] for p in problems] == [
        "limits.commands_per_minute", "limits.queued_per_user", "limits.exempt_roles[0]"]


def test_a_broken_role_still_counts_as_defined_and_broken_roles_are_not_reported_twice() -> None:
    problems = _problems(_base({"exempt_roles": ["ops"]}, roles={"admin": {"actions": ["*"]}, "ops": {}}))
    assert problems == ("access.roles.ops.actions: is required",)


def test_exempt_roles_are_not_checked_against_an_unreadable_roles_section() -> None:
    problems = _problems(_base({"exempt_roles": ["admin"]}, roles=["admin"]))
    assert [p.split(":", 1)[0] for p in problems] == ["access.roles"]


def test_limits_built_by_hand_are_valid_and_frozen() -> None:
    with pytest.raises(ValueError, match="Limits.queued_per_user"):
        Limits(queued_per_user=0)
    with pytest.raises(TypeError, match="not a string"):
        Limits(exempt_roles="admin")  # type: ignore[arg-type]
    assert Limits(exempt_roles=["a"]).exempt_roles == ("a",)  # type: ignore[arg-type]


def test_the_summary_says_each_limit_and_who_is_exempt() -> None:
    assert ("limits: commands 30 a minute per person; open jobs 20 per person, 200 per host; exempt roles: admin"
            in parse_config(_base()).summary())
    summary = parse_config(_base({"commands_per_minute": "off", "queued_per_host": 50, "exempt_roles": []})).summary()
    assert "limits: commands no limit; open jobs 20 per person, 50 per host; exempt roles: nobody" in summary
    no_admin = _base(roles={"ops": {"actions": ["push"]}})
    no_admin["access"]["grants"] = [{"role": "ops", "users": ["U0DEV1"]}]
    assert "exempt roles: admin (admin not defined: exempts nobody)" in parse_config(no_admin).summary()
