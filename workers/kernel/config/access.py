"""The ``access`` section: roles, the grants that give them, and the approvals rules.

A rule that refers to something broken elsewhere (a role, a registry, a host) is not
reported again for it: one mistake, one problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from workers.kernel.actions import PROTECTABLE_ACTIONS
from workers.kernel.config.identities import IdentityRules
from workers.kernel.config.model import EVERYONE, AccessConfig, ApprovalRule, Grant, Role
from workers.kernel.config.patterns import (
    GLOB_KEYS,
    check_action_patterns,
    check_named_globs,
    read_globs,
)
from workers.kernel.config.problems import Problems, did_you_mean, join_names, kind, name_problem

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class Names:
    """What access rules may refer to; None where that part of the config is itself broken."""

    registries: Sequence[str] | None
    hosts: Sequence[str] | None


@dataclass(frozen=True)
class _Roles:
    """The roles that parsed, and every name defined (broken roles too); ``ok`` is False if unreadable."""

    parsed: dict[str, Role]
    defined: list[str]
    ok: bool


def parse_access(problems: Problems, value: object, names: Names, identities: IdentityRules) -> AccessConfig:
    if value is None:
        return AccessConfig()
    data = problems.mapping(value, "access", required=(), optional=("roles", "grants", "approvals"))
    if data is None:
        return AccessConfig()
    roles = _parse_roles(problems, data.get("roles"), names)
    grants = _each(
        problems,
        data.get("grants"),
        "access.grants",
        "{role, users, usergroups, channels}",
        lambda index, item: _parse_grant(problems, index, item, roles, identities),
    )
    approvals = _each(
        problems,
        data.get("approvals"),
        "access.approvals",
        "{images, tags, actions, approvers, required, expires_in}",
        lambda index, item: _parse_approval(problems, index, item, roles, identities),
    )
    # A grant of a role that is defined but broken is dropped: that role's problem is reported already.
    usable = tuple(grant for grant in grants if grant.role in roles.parsed)
    return AccessConfig(roles=roles.parsed, grants=usable, approvals=tuple(approvals))


def _each(
    problems: Problems, value: object, path: str, shape: str, parse: Callable[[int, object], _Item | None]
) -> list[_Item]:
    """Parse every item of the list at ``path`` (absent: none); the items that parsed."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(path, f"must be a list of {shape} mappings; got {kind(value)}")
        return []
    return [item for item in (parse(index, item) for index, item in enumerate(value)) if item is not None]


def _parse_roles(problems: Problems, value: object, names: Names) -> _Roles:
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        problems.add("access.roles", f"must be a mapping of role names to settings; got {kind(value)}")
        return _Roles({}, [], ok=False)
    parsed: dict[str, Role] = {}
    for name, settings in value.items():
        problem = name_problem(str(name))
        if not isinstance(name, str) or problem:
            problems.add(f"access.roles.{name}", problem or "role names must be strings")
            continue
        role = _parse_role(problems, name, settings, names)
        if role is not None:
            parsed[name] = role
    # A rule naming a role that is defined but broken is not also reported as undefined.
    return _Roles(parsed, [name for name in value if isinstance(name, str)], ok=True)


def _parse_role(problems: Problems, name: str, value: object, names: Names) -> Role | None:
    path = f"access.roles.{name}"
    data = problems.mapping(value, path, required=("actions",), optional=tuple(key for key, _ in GLOB_KEYS))
    if data is None:
        return None
    before = len(problems.items)
    actions = (
        problems.strings(data["actions"], f"{path}.actions", "actions or globs, like [push, pull]")
        if "actions" in data
        else None
    )
    if actions is not None:
        check_action_patterns(problems, actions, f"{path}.actions")
    globs = read_globs(problems, data, path, GLOB_KEYS)
    check_named_globs(problems, globs.get("registries", ()), f"{path}.registries", names.registries, "registry")
    check_named_globs(problems, globs.get("hosts", ()), f"{path}.hosts", names.hosts, "host")
    if len(problems.items) > before or actions is None:
        return None
    return Role(name=name, actions=actions, **globs)


def _parse_grant(
    problems: Problems, index: int, value: object, roles: _Roles, identities: IdentityRules
) -> Grant | None:
    path = f"access.grants[{index}]"
    data = problems.mapping(value, path, required=("role",), optional=("users", "usergroups", "channels"))
    if data is None:
        return None
    before = len(problems.items)
    role = problems.string(data["role"], f"{path}.role", "a role name") if "role" in data else None
    if role is not None and roles.ok and role not in roles.defined:
        problems.add(
            f"{path}.role",
            f"no role `{role}` is defined; {did_you_mean(role, roles.defined)}"
            f"defined roles: {join_names(roles.defined)}",
        )
    if "users" not in data and "usergroups" not in data:
        problems.add(
            f"{path}.users",
            'is required unless `usergroups` is given: Slack user IDs like [U0ADMIN], or ["*"] for '
            "everyone; `usergroups` takes user-group IDs like [S0DEVOPS]",
        )

    def user(value: str) -> str | None:
        return None if value == EVERYONE else identities.user(value)

    lists: dict[str, tuple[str, ...]] = {}
    for key, what, check in (
        ("users", 'Slack user IDs, or "*"', user),
        ("usergroups", "Slack user-group IDs", identities.usergroup),
        ("channels", "Slack channel IDs", identities.channel_id),
    ):
        values = problems.strings(data[key], f"{path}.{key}", what) if key in data else None
        if values is not None:
            problems.each(values, f"{path}.{key}", check)
            lists[key] = values
    if len(problems.items) > before or role is None:
        return None
    return Grant(role=role, index=index, **lists)


def _parse_approval(
    problems: Problems, index: int, value: object, roles: _Roles, identities: IdentityRules
) -> ApprovalRule | None:
    path = f"access.approvals[{index}]"
    data = problems.mapping(
        value,
        path,
        required=("approvers",),
        optional=("images", "tags", "actions", "required", "expires_in"),
        hints={"expires": "did you mean `expires_in`?", "approver": "did you mean `approvers`?"},
    )
    if data is None:
        return None
    before = len(problems.items)
    fields = _protected(problems, path, data)
    approvers = (
        problems.strings(data["approvers"], f"{path}.approvers", "role names or Slack user IDs")
        if "approvers" in data
        else None
    )
    users_ok = approvers is not None and _check_approvers(problems, path, approvers, roles, identities)
    fields.update(_limits(problems, path, data))
    if approvers is not None and users_ok and all(approver not in roles.defined for approver in approvers):
        # Only users: the rule can never be satisfied if it asks for more of them than listed.
        people = len(set(approvers))
        if fields.get("required", 1) > people:
            problems.add(
                f"{path}.required",
                f"asks for {fields['required']} approvals but only {people} user(s) may approve; "
                "list more approvers or lower `required`",
            )
    if len(problems.items) > before or approvers is None:
        return None
    return ApprovalRule(index=index, approvers=approvers, **fields)


def _protected(problems: Problems, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What a rule protects: image and tag globs, and actions."""
    fields: dict[str, Any] = dict(read_globs(problems, data, path, GLOB_KEYS[:2]))
    if "actions" in data:
        actions = problems.strings(data["actions"], f"{path}.actions", "actions to protect, like [push]")
        if actions is not None:
            check_action_patterns(problems, actions, f"{path}.actions", PROTECTABLE_ACTIONS)
            fields["actions"] = actions
    return fields


def _limits(problems: Problems, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """How many approvals a rule needs, and how long a request stays open."""
    fields: dict[str, Any] = {}
    if "required" in data:
        required = problems.count(data["required"], f"{path}.required", "approvals")
        if required is not None:
            fields["required"] = required
    if "expires_in" in data:
        expires_in = problems.duration(data["expires_in"], f"{path}.expires_in")
        if expires_in is not None:
            fields["expires_in"] = expires_in
    return fields


def _check_approvers(
    problems: Problems, path: str, approvers: Sequence[str], roles: _Roles, identities: IdentityRules
) -> bool:
    """Each approver names a defined role, else must be a valid user; False if one is neither.

    While the roles section is unreadable nothing is reported (every approver might be a role).
    """
    faults = {
        approver: identities.approver(approver, roles.defined)
        for approver in approvers
        if approver not in roles.defined
    }
    if roles.ok:
        problems.each(approvers, f"{path}.approvers", lambda approver: faults.get(approver))
    return not any(faults.values())
