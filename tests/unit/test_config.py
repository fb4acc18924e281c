"""The YAML config model (workers.kernel.config): the example loads, every problem is reported with its key path.

Problems are checked as the bot reports them: the kernel's loader with Slack's ID formats
(bot/slack/identities.py); the kernel's own identity rules are tested at the end.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bot.slack.identities import SLACK_IDENTITIES
from workers.kernel.actions import TAG_WRITING_ACTIONS
from workers.kernel.config import (
    ApprovalRule,
    Config,
    Grant,
    RegistryConfig,
    Retries,
    Role,
    Timeouts,
    load_config,
    parse_config,
    resolve_config_path,
)
from workers.kernel.config.summary import config_warnings
from workers.kernel.errors import ConfigError

EXAMPLE = """\
registries:
  main:
    server: dockerhub.example.com:5100
    services_hostname: namespace.example.com   # namespace defaults to its reverse
    # namespace: com.example.namespace         # optional explicit namespace
    username: user001@namespace.example.com
    password_env: REGISTRY_PASSWORD            # or password_file: /run/secrets/registry-password
default_registry: main
hosts: [build-1]
default_host: build-1
notify_channel: C0DEPLOYS        # optional: a deployment notification for every successful push
access:
  roles:
    admin:    {actions: ["*"]}
    deployer: {actions: [push, pull, tag, login], images: ["centos7-*"], tags: ["*"]}
  grants:
    - {role: admin, users: [U0ADMIN]}
    - {role: deployer, users: [U0DEV1, U0DEV2]}
"""


def _base() -> dict[str, Any]:
    return {
        "registries": {
            "main": {
                "server": "dockerhub.example.com:5100",
                "services_hostname": "namespace.example.com",
                "username": "user001@namespace.example.com",
                "password_env": "REGISTRY_PASSWORD",
            }
        },
        "hosts": ["build-1"],
        "access": {
            "roles": {"admin": {"actions": ["*"]}},
            "grants": [{"role": "admin", "users": ["U0ADMIN"]}],
        },
    }


def _problems(data: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, SLACK_IDENTITIES)
    return info.value.problems


def test_the_example_from_the_issue_loads(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    assert dict(config.registries) == {
        "main": RegistryConfig(
            name="main",
            server="dockerhub.example.com:5100",
            services_hostname="namespace.example.com",
            namespace="com.example.namespace",
            username="user001@namespace.example.com",
            password_env="REGISTRY_PASSWORD",
            password_file=None,
        )
    }
    assert config.default_registry == "main"
    assert config.hosts == ("build-1",)
    assert config.default_host == "build-1"
    assert config.notify_channel == "C0DEPLOYS"
    assert config.timeouts == Timeouts(push=1800, pull=1800, tag=120, login=120)
    assert dict(config.access.roles) == {
        "admin": Role("admin", ("*",), ("**",), ("*",)),
        "deployer": Role("deployer", ("push", "pull", "tag", "login"), ("centos7-*",), ("*",)),
    }
    assert config.access.grants == (Grant("admin", ("U0ADMIN",)), Grant("deployer", ("U0DEV1", "U0DEV2")))


def test_the_config_is_deeply_immutable() -> None:
    config = parse_config(_base())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.default_host = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.registries["x"] = config.registries["main"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.access.roles["x"] = config.access.roles["admin"]  # type: ignore[index]
    assert isinstance(config.hosts, tuple)
    assert isinstance(config.access.grants[0].users, tuple)


def test_defaults_apply_when_there_is_one_registry_and_one_host() -> None:
    config = parse_config(_base())
    assert config.default_registry == "main"
    assert config.default_host == "build-1"
    assert config.notify_channel is None
    assert config.timeouts == Timeouts()


def test_an_explicit_namespace_wins_over_the_services_hostname() -> None:
    data = _base()
    data["registries"]["main"]["namespace"] = "org.example.team"
    assert parse_config(data).registries["main"].namespace == "org.example.team"


def test_a_namespace_alone_needs_no_services_hostname() -> None:
    data = _base()
    del data["registries"]["main"]["services_hostname"]
    data["registries"]["main"]["namespace"] = "com.example.namespace"
    registry = parse_config(data).registries["main"]
    assert (registry.namespace, registry.services_hostname) == ("com.example.namespace", "")


def test_an_empty_access_section_is_valid_and_grants_nothing() -> None:
    data = _base()
    data["access"] = None
    config = parse_config(data)
    assert (dict(config.access.roles), config.access.grants) == ({}, ())


def _set(path: str, value: Any) -> Any:
    """A change to the base config: set the dotted ``path`` (list items as [n]) to ``value``."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set("registries", _DELETE), "registries: is required"),
        (_set("hosts", _DELETE), "hosts: is required"),
        (_set("registries", {}), "registries: must be a mapping of registry names to settings"),
        (_set("registries.main.server", _DELETE), "registries.main.server: is required"),
        (_set("registries.main.username", _DELETE), "registries.main.username: is required"),
        (
            _set("registries.main.services_hostname", _DELETE),
            "registries.main.services_hostname: is required unless `namespace` is given",
        ),
        (
            _set("registries.main.server", "https://dockerhub.example.com"),
            "registries.main.server: registry server",
        ),
        (
            _set("registries.main.server", "dockerhub.example.com:99999"),
            "registries.main.server: registry server",
        ),
        (_set("registries.main.server", 5100), "registries.main.server: must be a string"),
        (
            _set("registries.main.services_hostname", "namespace.example.com:443"),
            "registries.main.services_hostname: hostname `namespace.example.com:443` has a port",
        ),
        (
            _set("registries.main.namespace", "Com.Example"),
            "registries.main.namespace: namespace `Com.Example`: upper-case letters are not allowed",
        ),
        (
            _set("registries.main.namespace", "com..example"),
            "registries.main.namespace: namespace `com..example`",
        ),
        (_set("registries.main.username", ""), "registries.main.username: must not be empty"),
        (
            _set("registries.main.password_env", "1BAD"),
            "registries.main.password_env: is not an environment variable",
        ),
        (
            _set("registries.main.password_env", _DELETE),
            "registries.main: give exactly one of `password_env` (an environment variable",
        ),
        (_set("registries.main.password_file", "/run/secrets/p"), "registries.main: give exactly one of"),
        (_set("registries.main.sever", "x"), "registries.main.sever: unknown key; did you mean `server`?"),
        (
            _set("registries.main.password", "s3cret"),
            "registries.main.password: unknown key; passwords are never kept",
        ),
        (_set("registries.bad name", {}), "registries.bad name: name `bad name` is not valid"),
        (_set("registries.main", "dockerhub.example.com"), "registries.main: must be a mapping"),
        (
            _set("default_registry", "mian"),
            "default_registry: no registry `mian` is defined; did you mean `main`?",
        ),
        (
            _set("default_host", "build-2"),
            "default_host: no host `build-2` is defined; did you mean `build-1`?",
        ),
        (_set("default_host", "x"), "default_host: no host `x` is defined; defined: `build-1`"),
        (_set("hosts", []), "hosts: must not be empty"),
        (_set("hosts", "build-1"), "hosts: must be a list of Docker host names"),
        (_set("hosts", ["build-1", "build-1"]), "hosts[1]: `build-1` is listed twice"),
        (_set("hosts", ["build 1"]), "hosts[0]: name `build 1` is not valid"),
        (_set("hosts", ["-x"]), "hosts[0]: name `-x` is not valid"),
        (
            _set("hosts", ["a", "b"]),
            "default_host: is required when there are several hosts: one of `a`, `b`",
        ),
        (
            _set("notify_channel", "deploys channel"),
            "notify_channel: `deploys channel` is not a Slack channel",
        ),
        (_set("notify_chanel", "C0"), "notify_chanel: unknown key; did you mean `notify_channel`?"),
        (_set("timeouts", {"push": "30x"}), "timeouts.push: `30x` is not a duration"),
        (_set("timeouts", {"pull": 0}), "timeouts.pull: must be positive"),
        (_set("timeouts", {"tag": True}), "timeouts.tag: must be a duration"),
        (_set("timeouts", {"pul": 10}), "timeouts.pul: unknown key; did you mean `pull`?"),
        (
            _set("access.roles.admin.actions", ["psuh"]),
            "access.roles.admin.actions[0]: `psuh` matches no action; did you mean `push`?",
        ),
        (_set("access.roles.admin.actions", ["z*"]), "access.roles.admin.actions[0]: `z*` matches no action"),
        (_set("access.roles.admin.actions", "push"), "access.roles.admin.actions: must be a list"),
        (_set("access.roles.admin.actions", []), "access.roles.admin.actions: must not be empty"),
        (_set("access.roles.admin.actions", _DELETE), "access.roles.admin.actions: is required"),
        (
            _set("access.roles.admin.images", ["Centos7-*"]),
            "access.roles.admin.images[0]: `Centos7-*` can never match",
        ),
        (_set("access.roles.admin.tags", [1.0]), "access.roles.admin.tags[0]: must be a string (tag globs"),
        (
            _set("access.roles.admin.image", ["x"]),
            "access.roles.admin.image: unknown key; did you mean `images`?",
        ),
        (
            _set("access.grants[0].role", "admn"),
            "access.grants[0].role: no role `admn` is defined; did you mean `admin`? defined roles: `admin`",
        ),
        (_set("access.grants[0].role", _DELETE), "access.grants[0].role: is required"),
        (_set("access.grants[0].users", _DELETE), "access.grants[0].users: is required"),
        (
            _set("access.grants[0].users", ["alice"]),
            "access.grants[0].users[0]: `alice` is not a Slack user ID",
        ),
        (_set("access.grants[0].user", ["U1"]), "access.grants[0].user: unknown key; did you mean `users`?"),
        (_set("access.grants", {"role": "admin"}), "access.grants: must be a list"),
        (_set("access.rolse", {}), "access.rolse: unknown key; did you mean `roles`?"),
        (_set("default_registy", "main"), "default_registy: unknown key; did you mean `default_registry`?"),
    ],
)
def test_each_kind_of_problem_is_reported_with_its_key_path(change: Any, problem: str) -> None:
    data = copy.deepcopy(_base())
    change(data)
    problems = _problems(data)
    assert any(item.startswith(problem) for item in problems), problems


def test_several_problems_are_reported_at_once() -> None:
    data = _base()
    data["registries"]["main"]["server"] = "https://x"
    data["hosts"] = ["a", "a"]
    data["access"]["grants"].append({"role": "ghost", "users": ["U1"]})
    data["extra"] = 1
    problems = _problems(data)
    assert len(problems) == 4
    assert [item.split(":")[0] for item in problems] == [
        "extra",
        "registries.main.server",
        "hosts[1]",
        "access.grants[1].role",
    ]


def test_a_problem_is_reported_once_even_when_others_depend_on_it() -> None:
    data = _base()
    data["hosts"] = "build-1"
    data["default_host"] = "build-1"
    data["access"]["roles"]["admin"]["actions"] = ["bogus"]
    problems = _problems(data)
    # The broken hosts list and role are not also reported as undefined by what refers to them.
    assert [item.split(":")[0] for item in problems] == ["hosts", "access.roles.admin.actions[0]"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "(top level): the configuration is empty"),
        ([], "(top level): must be a mapping"),
        ("text", "(top level): must be a mapping"),
    ],
)
def test_a_document_that_is_not_a_mapping(data: object, problem: str) -> None:
    assert _problems(data)[0].startswith(problem)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90), ("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("2m5s", 125)],
)
def test_timeouts_take_seconds_or_durations(value: object, seconds: int) -> None:
    data = _base()
    data["timeouts"] = {"push": value}
    timeouts = parse_config(data).timeouts
    assert timeouts.push == seconds
    assert timeouts.for_action("push") == seconds
    assert timeouts.for_action("pull") == 1800
    assert timeouts.for_action("login") == 120


def test_for_action_refuses_an_action_without_a_timeout() -> None:
    with pytest.raises(KeyError):
        Timeouts().for_action("help")


def test_several_registries_and_hosts_need_explicit_defaults() -> None:
    data = _base()
    data["registries"]["other"] = dict(data["registries"]["main"])
    data["hosts"] = ["build-1", "build-2"]
    problems = _problems(data)
    assert (
        "default_registry: is required when there are several registries: one of `main`, `other`" in problems
    )
    assert "default_host: is required when there are several hosts: one of `build-1`, `build-2`" in problems
    data["default_registry"] = "other"
    data["default_host"] = "build-2"
    config = parse_config(data)
    assert (config.default_registry, config.default_host) == ("other", "build-2")


def test_summary_shows_where_passwords_live_but_never_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY_PASSWORD", "env-s3cret-value")
    secret_file = tmp_path / "registry-password"
    secret_file.write_text("file-s3cret-value")
    data = _base()
    data["registries"]["file"] = {
        "server": "r2.example:5000",
        "namespace": "org.example",
        "username": "svc",
        "password_file": str(secret_file),
    }
    data["default_registry"] = "main"
    data["notify_channel"] = "C0DEPLOYS"
    summary = parse_config(data).summary()
    assert "env-s3cret-value" not in summary
    assert "file-s3cret-value" not in summary
    for fragment in [
        "main (default): server dockerhub.example.com:5100, namespace com.example.namespace",
        "password from environment variable REGISTRY_PASSWORD",
        f"password from file {secret_file}",
        "namespace org.example (explicit)",
        "hosts: build-1 (default)",
        "notify channel: C0DEPLOYS",
        "timeouts: push 30m, pull 30m, tag 2m, login 2m",
        "access: 1 role(s), 1 grant(s)",
        "role admin: actions *",
    ]:
        assert fragment in summary


def test_summary_says_when_nobody_has_access() -> None:
    data = _base()
    del data["access"]
    assert "no grants: nobody may run anything but help" in parse_config(data).summary()


def test_a_password_in_the_config_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(EXAMPLE.replace("    password_env: REGISTRY_PASSWORD", "    password: pl4in-s3cret"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = "\n".join(info.value.problems) + str(info.value)
    assert "pl4in-s3cret" not in text
    assert "registries.main.password: unknown key; passwords are never kept in the config" in text


def test_a_password_pasted_as_password_env_is_not_echoed() -> None:
    data = _base()
    data["registries"]["main"]["password_env"] = "hunter2!pw"
    (problem,) = _problems(data)
    assert problem.startswith(
        "registries.main.password_env: is not an environment variable name (value not shown)"
    )
    assert "hunter2" not in problem


def test_a_missing_file_names_the_path_and_the_ways_to_give_one(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == (
        f"{path}: no such file; give --config PATH, set $REGOPS_CONFIG, or create ./regops.yaml",
    )
    assert str(path) in info.value.user_message


def test_a_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems[0].startswith(f"{tmp_path}: cannot be read")


def test_invalid_yaml_names_the_position_but_not_the_line(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text("registries:\n  main: [\n    password: t0p-s3cret\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:")
    assert "invalid YAML" in problem
    assert "t0p-s3cret" not in problem


def test_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_bytes(b"hosts: [\xff]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "cannot be read" in info.value.problems[0]


ONCE = "give each key once (the earlier value would be ignored)"


def test_duplicate_keys_are_reported_with_the_other_problems(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(EXAMPLE + "hosts: [build-2]\nnotify_channel: C0OTHER\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == (
        f"{path}: line 19: duplicate key `hosts`; {ONCE}",
        f"{path}: line 20: duplicate key `notify_channel`; {ONCE}",
        "default_host: no host `build-1` is defined; did you mean `build-2`? defined: `build-2`",
    )
    assert info.value.user_message == f"invalid configuration ({path}): 3 problems"


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    text = EXAMPLE.replace("  main:\n", "  main: &main\n").replace(
        "default_registry: main\n",
        "  other:\n    <<: *main\n    server: r2.example:5000\ndefault_registry: main\n",
    )
    path.write_text(text)
    config = load_config(path)
    assert config.registries["other"].server == "r2.example:5000"
    assert config.registries["other"].namespace == "com.example.namespace"


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        ("/etc/regops/a.yaml", {"REGOPS_CONFIG": "/b.yaml"}, Path("/etc/regops/a.yaml")),
        (None, {"REGOPS_CONFIG": "/b.yaml"}, Path("/b.yaml")),
        (None, {"REGOPS_CONFIG": ""}, Path("regops.yaml")),
        (None, {}, Path("regops.yaml")),
        ("", {}, Path("regops.yaml")),
    ],
)
def test_resolve_config_path(explicit: str | None, environ: dict[str, str], expected: Path) -> None:
    assert resolve_config_path(explicit, environ) == expected


def test_config_error_summarises_the_count() -> None:
    assert ConfigError(["a: x"]).user_message == "invalid configuration: 1 problem"
    assert (
        ConfigError(["a: x", "b: y"], source="r.yaml").user_message
        == "invalid configuration (r.yaml): 2 problems"
    )
    assert ConfigError(["a: x"]).problems == ("a: x",)


def test_a_config_built_by_hand_is_frozen_too() -> None:
    config = Config(
        registries={"r": parse_config(_base()).registries["main"]},
        default_registry="r",
        hosts=["h"],  # type: ignore[arg-type]
        default_host="h",
        notify_channel=None,
        access=parse_config(_base()).access,
        timeouts=Timeouts(),
    )
    assert config.hosts == ("h",)
    with pytest.raises(TypeError):
        config.registries["x"] = config.registries["r"]  # type: ignore[index]
    with pytest.raises(TypeError, match="not a string"):
        Role("r", actions="push")  # type: ignore[arg-type]


# --- Access policy of issue 3: user groups, channels, registry/host globs, approvals ------------

ISSUE_EXAMPLE = """\
registries:
  main:
    server: dockerhub.example.com:5100
    services_hostname: namespace.example.com
    username: user001@namespace.example.com
    password_env: REGISTRY_PASSWORD
hosts: [build-1]
audit_channel: C0AUDIT
access:
  roles:
    admin:    {actions: ["*"]}
    deployer: {actions: [push, pull, tag, login, status, jobs, cancel], images: ["centos7-*", "web/*"], tags: ["*"], registries: ["*"], hosts: ["*"]}
    reader:   {actions: [pull, status, jobs]}
  grants:
    - {role: admin, users: [U0ADMIN]}
    - {role: deployer, usergroups: [S0DEVOPS], channels: [C0OPS, C0DEPLOYS]}
    - {role: reader, users: ["*"]}
  approvals:
    - {images: ["*"], tags: ["latest", "prod-*"], approvers: [admin], required: 1, expires_in: 30m}
"""


def test_the_policy_example_from_issue_3_loads(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(ISSUE_EXAMPLE)
    config = load_config(path)
    access = config.access
    assert access.roles["deployer"] == Role(
        "deployer",
        ("push", "pull", "tag", "login", "status", "jobs", "cancel"),
        ("centos7-*", "web/*"),
        ("*",),
        ("*",),
        ("*",),
    )
    assert access.roles["reader"].registries == ("*",)
    assert access.grants == (
        Grant("admin", users=("U0ADMIN",)),
        Grant("deployer", usergroups=("S0DEVOPS",), channels=("C0OPS", "C0DEPLOYS")),
        Grant("reader", users=("*",)),
    )
    assert [grant.index for grant in access.grants] == [0, 1, 2]
    assert access.approvals == (
        ApprovalRule(
            index=0,
            images=("*",),
            tags=("latest", "prod-*"),
            actions=("push", "promote", "rollback", "delete"),
            approvers=("admin",),
            required=1,
            expires_in=1800,
        ),
    )
    assert access.usergroups() == frozenset({"S0DEVOPS"})
    assert config.audit_channel == "C0AUDIT"


def test_the_shipped_example_config_still_loads() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "deploy" / "regops.example.yaml")
    assert config.access.grants[0] == Grant("admin", ("U0ADMIN",))
    assert config.access.grants[1].usergroups == ("S0DEVOPS",)
    assert config.access.grants[1].channels == ("C0OPS", "C0DEPLOYS")
    (rule,) = config.access.approvals
    assert (rule.tags, rule.approvers, rule.required, rule.expires_in) == (("latest", "prod-*"), ("admin",), 1, 1800)
    assert rule.actions == TAG_WRITING_ACTIONS
    assert config.audit_channel == "C0AUDIT"
    # Deployers move tags (and undo it); only admins delete a manifest and every tag on it.
    deployer = config.access.roles["deployer"].actions
    assert {"promote", "rollback", "tags", "inspect", "history"} <= set(deployer)
    assert "delete" not in deployer and "*" not in deployer
    assert config.access.roles["admin"].actions == ("*",)


def test_approvals_defaults() -> None:
    data = _base()
    data["access"]["approvals"] = [{"approvers": ["admin"]}]
    (rule,) = parse_config(data).access.approvals
    assert (rule.images, rule.tags, rule.actions, rule.required, rule.expires_in) == (
        ("**",),
        ("*",),
        ("push", "promote", "rollback", "delete"),
        1,
        1800,
    )
    assert rule.actions == TAG_WRITING_ACTIONS


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("users", ["*", "U0A", "W0GRID"], ("*", "U0A", "W0GRID")),
        ("usergroups", ["S0DEVOPS", "S012AB"], ("S0DEVOPS", "S012AB")),
        ("channels", ["C0OPS", "G0PRIVATE", "D0DM"], ("C0OPS", "G0PRIVATE", "D0DM")),
    ],
)
def test_grant_lists_accept_slack_ids(key: str, value: list[str], expected: tuple[str, ...]) -> None:
    data = _base()
    data["access"]["grants"] = [{"role": "admin", "usergroups": ["S0X"], key: value}]
    assert getattr(parse_config(data).access.grants[0], key) == expected


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("2h30m", 9000)]
)
def test_approval_expiry_takes_seconds_or_durations(value: object, seconds: int) -> None:
    data = _base()
    data["access"]["approvals"] = [{"approvers": ["U0BOSS"], "expires_in": value}]
    assert parse_config(data).access.approvals[0].expires_in == seconds


def _policy_base() -> dict[str, Any]:
    data = _base()
    data["registries"]["prod"] = dict(data["registries"]["main"])
    data["default_registry"] = "main"
    data["hosts"] = ["build-1", "build-2"]
    data["default_host"] = "build-1"
    data["access"] = {
        "roles": {
            "admin": {"actions": ["*"]},
            "deployer": {"actions": ["push", "pull"], "registries": ["prod"], "hosts": ["build-*"]},
        },
        "grants": [
            {"role": "admin", "users": ["U0ADMIN"]},
            {"role": "deployer", "usergroups": ["S0DEVOPS"], "channels": ["C0OPS"]},
        ],
        "approvals": [
            {"tags": ["latest"], "approvers": ["admin", "U0BOSS"], "required": 2, "expires_in": "30m"}
        ],
    }
    return data


def test_the_policy_base_is_valid() -> None:
    access = parse_config(_policy_base()).access
    assert access.roles["deployer"].hosts == ("build-*",)
    assert access.approvals[0].approvers == ("admin", "U0BOSS")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        # Roles: registry and host globs must match something configured; globs must be able to match.
        (
            _set("access.roles.deployer.registries", ["staging"]),
            "access.roles.deployer.registries[0]: `staging` matches no configured registry; defined: `main`, `prod`",
        ),
        (
            _set("access.roles.deployer.registries", ["prdo"]),
            "access.roles.deployer.registries[0]: `prdo` matches no configured registry; did you mean `prod`?",
        ),
        (
            _set("access.roles.deployer.hosts", ["biuld-1"]),
            "access.roles.deployer.hosts[0]: `biuld-1` matches no configured host; did you mean `build-1`?",
        ),
        (_set("access.roles.deployer.hosts", "build-1"), "access.roles.deployer.hosts: must be a list"),
        (_set("access.roles.deployer.registries", []), "access.roles.deployer.registries: must not be empty"),
        (
            _set("access.roles.deployer.tags", ["rc-[0-9"]),
            "access.roles.deployer.tags[0]: `rc-[0-9`: a `[` is never closed",
        ),
        (
            _set("access.roles.deployer.images", ["web/app:latest"]),
            "access.roles.deployer.images[0]: `web/app:latest` can never match: give the image name only",
        ),
        (
            _set("access.roles.deployer.tags", ["v1/*"]),
            "access.roles.deployer.tags[0]: `v1/*` can never match: a tag has no",
        ),
        (
            _set("access.roles.deployer.host", ["*"]),
            "access.roles.deployer.host: unknown key; did you mean `hosts`?",
        ),
        (
            _set("access.roles.deployer.actions", ["stauts"]),
            "access.roles.deployer.actions[0]: `stauts` matches no action; did you mean `status`?",
        ),
        # Grants: users, usergroups, channels.
        (
            _set("access.grants[1].usergroups", _DELETE),
            "access.grants[1].users: is required unless `usergroups` is given",
        ),
        (
            _set("access.grants[1].usergroups", ["devops"]),
            "access.grants[1].usergroups[0]: `devops` is not a Slack user-group ID",
        ),
        (
            _set("access.grants[1].usergroups", ["@devops"]),
            "access.grants[1].usergroups[0]: `@devops` is not a Slack user-group ID",
        ),
        (_set("access.grants[1].usergroups", "S0DEVOPS"), "access.grants[1].usergroups: must be a list"),
        (_set("access.grants[1].usergroups", []), "access.grants[1].usergroups: must not be empty"),
        (
            _set("access.grants[1].channels", ["#ops"]),
            "access.grants[1].channels[0]: `#ops` is not a Slack channel ID",
        ),
        (
            _set("access.grants[1].channels", ["U0ADMIN"]),
            "access.grants[1].channels[0]: `U0ADMIN` is not a Slack channel ID",
        ),
        (_set("access.grants[1].channels", [42]), "access.grants[1].channels[0]: must be a string"),
        (
            _set("access.grants[1].channel", ["C0OPS"]),
            "access.grants[1].channel: unknown key; did you mean `channels`?",
        ),
        (
            _set("access.grants[1].usergroup", ["S0X"]),
            "access.grants[1].usergroup: unknown key; did you mean `usergroups`?",
        ),
        (
            _set("access.grants[0].users", ["S0DEVOPS"]),
            "access.grants[0].users[0]: `S0DEVOPS` is not a Slack user ID",
        ),
        (
            _set("access.grants[0].users", ["u0admin"]),
            "access.grants[0].users[0]: `u0admin` is not a Slack user ID",
        ),
        # Approvals.
        (
            _set("access.approvals[0].approvers", ["admn"]),
            "access.approvals[0].approvers[0]: no role `admn` is defined and it is not a Slack user ID; did you mean `admin`?",
        ),
        (
            _set("access.approvals[0].approvers", ["*"]),
            "access.approvals[0].approvers[0]: no role `*` is defined",
        ),
        (_set("access.approvals[0].approvers", []), "access.approvals[0].approvers: must not be empty"),
        (_set("access.approvals[0].approvers", _DELETE), "access.approvals[0].approvers: is required"),
        (
            _set("access.approvals[0].approvers", ["U0BOSS"]),
            "access.approvals[0].required: asks for 2 approvals but only 1 user(s) may approve",
        ),
        (_set("access.approvals[0].required", 0), "access.approvals[0].required: must be at least 1"),
        (_set("access.approvals[0].required", "2"), "access.approvals[0].required: must be a whole number"),
        (_set("access.approvals[0].required", True), "access.approvals[0].required: must be a whole number"),
        (
            _set("access.approvals[0].expires_in", "30x"),
            "access.approvals[0].expires_in: `30x` is not a duration",
        ),
        (_set("access.approvals[0].expires_in", 0), "access.approvals[0].expires_in: must be positive"),
        (
            _set("access.approvals[0].actions", ["help"]),
            "access.approvals[0].actions[0]: `help` matches no action",
        ),
        (
            _set("access.approvals[0].actions", ["pusj"]),
            "access.approvals[0].actions[0]: `pusj` matches no action; did you mean `push`?",
        ),
        (
            _set("access.approvals[0].images", ["Web/*"]),
            "access.approvals[0].images[0]: `Web/*` can never match",
        ),
        (
            _set("access.approvals[0].tags", ["[latest"]),
            "access.approvals[0].tags[0]: `[latest`: a `[` is never closed",
        ),
        (_set("access.approvals[0].tags", "latest"), "access.approvals[0].tags: must be a list"),
        (
            _set("access.approvals[0].expires", "30m"),
            "access.approvals[0].expires: unknown key; did you mean `expires_in`?",
        ),
        (
            _set("access.approvals[0].approver", ["admin"]),
            "access.approvals[0].approver: unknown key; did you mean `approvers`?",
        ),
        (
            _set("access.approvals[0].registries", ["*"]),
            "access.approvals[0].registries: unknown key; valid keys:",
        ),
        (_set("access.approvals[0]", "admin"), "access.approvals[0]: must be a mapping"),
        (_set("access.approvals", {"approvers": ["admin"]}), "access.approvals: must be a list"),
        (_set("access.approval", []), "access.approval: unknown key; did you mean `approvals`?"),
        # The audit channel.
        (_set("audit_channel", "audit log"), "audit_channel: `audit log` is not a Slack channel"),
        (_set("audit_channel", 5), "audit_channel: must be a string"),
        (_set("audit_chanel", "C0AUDIT"), "audit_chanel: unknown key; did you mean `audit_channel`?"),
    ],
)
def test_each_policy_problem_is_reported_with_its_key_path(change: Any, problem: str) -> None:
    data = copy.deepcopy(_policy_base())
    change(data)
    problems = _problems(data)
    assert any(item.startswith(problem) for item in problems), problems


def test_every_policy_problem_is_reported_at_once() -> None:
    data = _policy_base()
    data["access"]["roles"]["deployer"]["hosts"] = ["nowhere"]
    data["access"]["grants"][1]["channels"] = ["#ops"]
    data["access"]["grants"].append({"role": "ghost", "users": ["U1"]})
    data["access"]["approvals"][0]["approvers"] = ["nobody"]
    data["access"]["approvals"][0]["expires_in"] = "soon"
    problems = _problems(data)
    assert [item.split(":")[0] for item in problems] == [
        "access.roles.deployer.hosts[0]",
        "access.grants[1].channels[0]",
        "access.grants[2].role",
        "access.approvals[0].approvers[0]",
        "access.approvals[0].expires_in",
    ]


def test_an_approver_naming_a_broken_role_is_not_reported_twice() -> None:
    data = _policy_base()
    data["access"]["roles"]["admin"]["actions"] = ["bogus"]
    assert [item.split(":")[0] for item in _problems(data)] == ["access.roles.admin.actions[0]"]


def test_registry_globs_are_not_checked_against_a_broken_registries_section() -> None:
    data = _policy_base()
    data["registries"] = "main"
    del data["default_registry"]
    problems = _problems(data)
    assert [item.split(":")[0] for item in problems] == ["registries"]


def test_summary_shows_grants_approvals_and_the_audit_channel() -> None:
    data = _policy_base()
    data["audit_channel"] = "C0AUDIT"
    summary = parse_config(data).summary()
    for fragment in [
        "access: 2 role(s), 2 grant(s), 1 approval rule(s)",
        "role deployer: actions push, pull; images **; tags *; registries prod; hosts build-*",
        "grants[0] role admin: user U0ADMIN; in any channel",
        "grants[1] role deployer: group S0DEVOPS; in C0OPS",
        (
                "approvals[0]: push, promote, rollback, delete of images **, tags latest needs 2 approvals from admin, "
                "U0BOSS; expires after 30m"
            ),
        "audit channel: C0AUDIT",
    ]:
        assert fragment in summary, summary
    assert "audit channel: none" in parse_config(_base()).summary()


def test_a_hand_built_grant_keeps_the_old_constructor_and_is_frozen() -> None:
    grant = Grant("admin", ("U1",))
    assert (grant.users, grant.usergroups, grant.channels, grant.index) == (("U1",), (), (), 0)
    with pytest.raises(TypeError, match="not a string"):
        Grant("admin", usergroups="S1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a string"):
        ApprovalRule(approvers="admin")  # type: ignore[arg-type]


def test_retries_default_when_absent() -> None:
    assert parse_config(_base()).retries == Retries(attempts=3, backoff=2, max_backoff=30)


def test_retries_take_attempts_and_durations() -> None:
    data = _base()
    data["retries"] = {"attempts": 5, "backoff": "1s", "max_backoff": "1m"}
    config = parse_config(data)
    assert config.retries == Retries(attempts=5, backoff=1, max_backoff=60)
    assert "retries: 5 attempt(s), backoff 1s doubling up to 1m" in config.summary()


@pytest.mark.parametrize(
    ("retries", "problem"),
    [
        ({"attempts": 0}, "retries.attempts: must be at least 1 (1 means no retry); got 0"),
        ({"attempts": "3"}, "retries.attempts: must be a whole number of runs, at least 1; got a string"),
        ({"attempts": True}, "retries.attempts: must be a whole number of runs"),
        ({"backoff": "2x"}, "retries.backoff: `2x` is not a duration"),
        ({"max_backoff": 0}, "retries.max_backoff: must be positive"),
        ({"backoff": "1m", "max_backoff": "30s"}, "retries.max_backoff: must not be shorter than retries.backoff"),
        ({"atempts": 3}, "retries.atempts: unknown key; did you mean `attempts`?"),
        ("3", "retries: must be a mapping with keys `attempts`, `backoff`, `max_backoff`"),
    ],
)
def test_retries_problems_name_their_key(retries: object, problem: str) -> None:
    data = _base()
    data["retries"] = retries
    assert any(item.startswith(problem) for item in _problems(data)), _problems(data)


def test_every_retries_problem_is_reported_at_once() -> None:
    data = _base()
    data["retries"] = {"attempts": 0, "backoff": "x", "extra": 1}
    keys = sorted(item.split(":")[0] for item in _problems(data))
    assert keys == ["retries.attempts", "retries.backoff", "retries.extra"]


# --- The kernel's own identity rules, and approvers split into roles and users ------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set("access.grants[0].users", ["U0 ADMIN"]), "access.grants[0].users[0]: `U0 ADMIN` is not a user ID"),
        (
            _set("access.grants[0].usergroups", ["dev ops"]),
            "access.grants[0].usergroups[0]: `dev ops` is not a user-group ID",
        ),
        (_set("access.grants[0].channels", ["C0 OPS"]), "access.grants[0].channels[0]: `C0 OPS` is not a channel ID"),
        (_set("notify_channel", "deploys channel"), "notify_channel: `deploys channel` is not a channel"),
        (
            _set("access.approvals", [{"approvers": ["the boss"]}]),
            "access.approvals[0].approvers[0]: no role `the boss` is defined and it is not a user ID",
        ),
    ],
)
def test_the_kernel_alone_takes_any_word_as_an_identity(change: Any, problem: str) -> None:
    data = copy.deepcopy(_base())
    change(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert any(item.startswith(problem) for item in info.value.problems), info.value.problems


def test_the_kernel_does_not_know_slack_formats() -> None:
    data = _base()
    data["notify_channel"] = "deploys"
    data["access"]["grants"] = [{"role": "admin", "users": ["alice"], "usergroups": ["@devops"], "channels": ["#ops"]}]
    data["access"]["approvals"] = [{"approvers": ["admin", "bob"]}]
    config = parse_config(data)
    assert config.access.grants[0].users == ("alice",)
    assert _problems(data)  # while the bot's loader refuses every one of them


def test_approvers_are_split_into_roles_and_users_when_parsed() -> None:
    (rule,) = parse_config(_policy_base(), SLACK_IDENTITIES).access.approvals
    assert (rule.approver_roles, rule.approver_users) == (("admin",), ("U0BOSS",))
    # The split is derived, not part of the rule's identity.
    assert rule == ApprovalRule(tags=("latest",), approvers=("admin", "U0BOSS"), required=2, expires_in=1800)


def test_a_rule_rebuilt_from_stored_fields_counts_each_approver_as_both_until_given_the_roles() -> None:
    rule = ApprovalRule(approvers=("admin", "U0BOSS"))
    assert rule.roles is None
    assert (rule.approver_roles, rule.approver_users) == (("admin", "U0BOSS"), ("admin", "U0BOSS"))
    split = rule.with_roles({"admin", "deployer"})
    assert (split.approver_roles, split.approver_users) == (("admin",), ("U0BOSS",))
    with pytest.raises(TypeError, match="not a string"):
        rule.with_roles("admin")


def test_the_bot_loader_checks_slack_ids_in_the_file(tmp_path: Path) -> None:
    from bot.slack.identities import load_bot_config

    path = tmp_path / "regops.yaml"
    path.write_text(EXAMPLE.replace("users: [U0ADMIN]", "users: [alice]"))
    assert load_config(path).access.grants[0].users == ("alice",)
    with pytest.raises(ConfigError) as info:
        load_bot_config(path)
    assert info.value.problems[0].startswith("access.grants[0].users[0]: `alice` is not a Slack user ID")
    assert info.value.source == str(path)


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        ("  /etc/regops/a.yaml\n", {}, Path("/etc/regops/a.yaml")),
        ("   ", {"REGOPS_CONFIG": "/b.yaml"}, Path("/b.yaml")),
        (None, {"REGOPS_CONFIG": " \t"}, Path("regops.yaml")),
        ("~/regops.yaml", {}, Path.home() / "regops.yaml"),
        (None, {"REGOPS_CONFIG": "~/x.yaml "}, Path.home() / "x.yaml"),
        (Path("/p/regops.yaml"), {}, Path("/p/regops.yaml")),
    ],
)
def test_resolve_config_path_expands_home_and_ignores_blanks(
    explicit: str | Path | None, environ: dict[str, str], expected: Path
) -> None:
    assert resolve_config_path(explicit, environ) == expected


# --- globs that stop at `/`, sources (issue 9, items 7 and 8) -------------------------------------


def test_a_role_takes_sources_and_check_config_shows_them() -> None:
    data = _policy_base()
    data["access"]["roles"]["deployer"]["sources"] = ["centos7-*", "sha256:*"]
    config = parse_config(data)
    assert config.access.roles["deployer"].sources == ("centos7-*", "sha256:*")
    assert config.access.roles["admin"].sources == ("**",)
    summary = config.summary()
    assert "hosts build-*; sources centos7-*, sha256:*" in summary
    assert "role admin: actions *; images **; tags *; registries *; hosts *\n" in summary


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("sources", "centos7-*", "must be a list"),
        ("sources", [], "must not be empty"),
        ("sources", ["[a-"], "a `[` is never closed"),
        ("images", ["[z-a]*"], "`[z-a]` is not a valid class"),
        ("sources", ["x[z-a]"], "`[z-a]` is not a valid class"),
    ],
)
def test_bad_role_globs_are_problems(key: str, value: object, fragment: str) -> None:
    data = _policy_base()
    data["access"]["roles"]["deployer"][key] = value
    problems = _problems(data)
    assert any(item.startswith(f"access.roles.deployer.{key}") and fragment in item for item in problems), problems


def test_check_config_warns_once_about_each_image_glob_that_no_longer_crosses_a_slash() -> None:
    data = _policy_base()
    data["access"]["roles"]["deployer"]["images"] = ["centos7-*", "web/**", "exact", "a?b", "team/[!x]*"]
    data["access"]["roles"]["deployer"]["tags"] = ["1.*"]  # tags have no `/`: nothing narrowed
    data["access"]["roles"]["deployer"]["sources"] = ["centos7-*"]  # new key: no old meaning
    data["access"]["approvals"][0]["images"] = ["*"]
    warnings = config_warnings(parse_config(data))
    assert [warning.split(":")[0] for warning in warnings] == [
        "access.roles.deployer.images[0]",
        "access.roles.deployer.images[3]",
        "access.roles.deployer.images[4]",
        "access.approvals[0].images[0]",
    ]
    assert "`centos7-*`" in warnings[0] and "`**`" in warnings[0]
    assert "asks no approval" in warnings[3]
    # Defaults and `**` mean what they meant: nothing to warn about.
    assert config_warnings(parse_config(_policy_base())) == []
