"""The YAML configuration model: registries, Docker hosts, access, approvals, timeouts, retries.

The whole file is validated up front and every problem is reported at once, each as
``key.path: what is wrong; what would be valid``.  Unknown keys are errors, because a
typo must never silently drop a setting.  The resulting :class:`Config` is deeply
immutable.  Passwords are never in the config, only where to find them.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from workers.kernel.actions import ACTIONS, NAME_PATTERN, PROTECTABLE_ACTIONS
from workers.kernel.errors import ConfigError, UsageError
from workers.kernel.references import (
    NAME_TOTAL_LENGTH_MAX,
    check_hostname,
    check_namespace,
    check_server,
    reverse_hostname,
)

CONFIG_ENV = "REGOPS_CONFIG"
DEFAULT_CONFIG_PATH = "regops.yaml"


EVERYONE = "*"

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
USER_ID = re.compile(r"[UW][A-Z0-9]+")
"""A Slack user ID (``W…`` in Enterprise Grid)."""
USERGROUP_ID = re.compile(r"S[A-Z0-9]+")
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]+")
"""A Slack conversation ID: public (``C…``), private (``G…``) or direct message (``D…``)."""
_CHANNEL = re.compile(r"[A-Z0-9]+|#[a-z0-9][a-z0-9_-]*")


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


def _frozen_strings(value: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        # tuple("push") would silently become ("p", "u", "s", "h").
        raise TypeError(f"{name} must be a sequence of strings, not a string")
    return tuple(value)


@dataclass(frozen=True)
class RegistryConfig:
    """One registry; ``namespace`` is resolved (explicit, or the services hostname reversed)."""

    name: str
    server: str
    services_hostname: str
    namespace: str
    username: str
    password_env: str | None
    password_file: str | None

    @property
    def password_source(self) -> str:
        """Where the workers read the password from, for summaries (never the value)."""
        if self.password_env:
            return f"environment variable {self.password_env}"
        return f"file {self.password_file}"


@dataclass(frozen=True)
class Role:
    """What a role allows: every glob list must match (``registries``/``hosts`` are config names)."""

    name: str
    actions: tuple[str, ...]
    images: tuple[str, ...] = ("*",)
    tags: tuple[str, ...] = ("*",)
    registries: tuple[str, ...] = ("*",)
    hosts: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        for name in ("actions", "images", "tags", "registries", "hosts"):
            object.__setattr__(self, name, _frozen_strings(getattr(self, name), f"Role.{name}"))


@dataclass(frozen=True)
class Grant:
    """Gives ``role`` to ``users`` (IDs or ``"*"``) and members of ``usergroups``, in ``channels``.

    Empty ``channels`` means any channel.  ``index`` is the grant's position in
    ``access.grants``, for messages and the audit trail; it is not part of a grant's
    identity (two grants with the same content are equal).
    """

    role: str
    users: tuple[str, ...] = ()
    usergroups: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    index: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        for name in ("users", "usergroups", "channels"):
            object.__setattr__(self, name, _frozen_strings(getattr(self, name), f"Grant.{name}"))


@dataclass(frozen=True, kw_only=True)
class ApprovalRule:
    """Requests matching ``actions``, ``images`` and ``tags`` wait for ``required`` approvals.

    ``actions`` defaults to push only: a push is what changes what the registry serves
    (pull and tag only change a Docker host, login changes nothing).  ``approvers`` are
    role names defined under ``access.roles`` or Slack user IDs.  ``expires_in`` is how
    many seconds a request stays open.  ``index`` is the rule's position in
    ``access.approvals``.
    """

    index: int = 0
    images: tuple[str, ...] = ("*",)
    tags: tuple[str, ...] = ("*",)
    actions: tuple[str, ...] = ("push",)
    approvers: tuple[str, ...]
    required: int = 1
    expires_in: int = 1800

    def __post_init__(self) -> None:
        for name in ("images", "tags", "actions", "approvers"):
            object.__setattr__(self, name, _frozen_strings(getattr(self, name), f"ApprovalRule.{name}"))
        # A rule nobody can satisfy, or one that needs no approval at all, must not be built by hand either.
        if not self.approvers:
            raise ValueError("ApprovalRule.approvers must name at least one role or user")
        if self.required < 1:
            raise ValueError("ApprovalRule.required must be at least 1")
        if self.expires_in < 1:
            raise ValueError("ApprovalRule.expires_in must be positive")

    @property
    def name(self) -> str:
        return f"approvals[{self.index}]"


@dataclass(frozen=True)
class AccessConfig:
    """Roles, the grants that give them, and the approvals rules, in file order.

    Grants and rules are renumbered on construction, so ``index`` always names the
    position in the list, also in an AccessConfig built by hand.
    """

    roles: Mapping[str, Role] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()
    approvals: tuple[ApprovalRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", _frozen_mapping(self.roles))
        object.__setattr__(
            self, "grants", tuple(replace(grant, index=index) for index, grant in enumerate(self.grants))
        )
        object.__setattr__(
            self, "approvals", tuple(replace(rule, index=index) for index, rule in enumerate(self.approvals))
        )

    def usergroups(self) -> frozenset[str]:
        """Every user group named in a grant: the memberships the bot must keep loaded."""
        return frozenset(group for grant in self.grants for group in grant.usergroups)


@dataclass(frozen=True)
class Timeouts:
    """Seconds each action may run on a worker before it is stopped."""

    push: int = 1800
    pull: int = 1800
    tag: int = 120
    login: int = 120

    def for_action(self, action: str) -> int:
        if action not in ("push", "pull", "tag", "login"):
            raise KeyError(f"no timeout for action {action!r}")
        value: int = getattr(self, action)
        return value


@dataclass(frozen=True)
class Retries:
    """How a worker retries a transient failure: ``attempts`` runs in all (the first included);
    the n-th retry waits ``backoff * 2**(n-1)`` seconds, at most ``max_backoff``."""

    attempts: int = 3
    backoff: int = 2
    max_backoff: int = 30


@dataclass(frozen=True)
class Config:
    registries: Mapping[str, RegistryConfig]
    default_registry: str
    hosts: tuple[str, ...]
    default_host: str
    notify_channel: str | None
    access: AccessConfig
    timeouts: Timeouts
    audit_channel: str | None = None
    retries: Retries = field(default_factory=Retries)

    def __post_init__(self) -> None:
        object.__setattr__(self, "registries", _frozen_mapping(self.registries))
        object.__setattr__(self, "hosts", _frozen_strings(self.hosts, "Config.hosts"))

    def summary(self) -> str:
        """A human summary for ``regops check-config``; shows where passwords live, never a password."""
        lines = ["registries:"]
        for name, registry in self.registries.items():
            default = " (default)" if name == self.default_registry else ""
            origin = (
                f"{registry.services_hostname} reversed"
                if registry.services_hostname
                and registry.namespace == reverse_hostname(registry.services_hostname)
                else "explicit"
            )
            lines.append(
                f"  {name}{default}: server {registry.server}, namespace {registry.namespace} ({origin}), "
                f"username {registry.username}, password from {registry.password_source}"
            )
        hosts = ", ".join(f"{host} (default)" if host == self.default_host else host for host in self.hosts)
        lines.append(f"hosts: {hosts}")
        lines.append(f"notify channel: {self.notify_channel or 'none'}")
        lines.append(f"audit channel: {self.audit_channel or 'none'}")
        timeouts = self.timeouts
        lines.append(
            "timeouts: "
            + ", ".join(
                f"{action} {format_duration(timeouts.for_action(action))}"
                for action in ("push", "pull", "tag", "login")
            )
        )
        retries = self.retries
        lines.append(
            f"retries: {retries.attempts} attempt(s), backoff {format_duration(retries.backoff)} "
            f"doubling up to {format_duration(retries.max_backoff)}"
        )
        access = self.access
        lines.append(
            f"access: {len(access.roles)} role(s), {len(access.grants)} grant(s), "
            f"{len(access.approvals)} approval rule(s)"
        )
        if not access.grants:
            lines.append("  no grants: nobody may run anything but help, whoami and can-i")
        for role in access.roles.values():
            lines.append(
                f"  role {role.name}: actions {', '.join(role.actions)}; images {', '.join(role.images)}; "
                f"tags {', '.join(role.tags)}; registries {', '.join(role.registries)}; "
                f"hosts {', '.join(role.hosts)}"
            )
        for grant in access.grants:
            who = [*(f"user {user}" if user != EVERYONE else "everyone" for user in grant.users)]
            who += [f"group {group}" for group in grant.usergroups]
            where = ", ".join(grant.channels) if grant.channels else "any channel"
            lines.append(f"  grants[{grant.index}] role {grant.role}: {', '.join(who)}; in {where}")
        for rule in access.approvals:
            noun = "approval" if rule.required == 1 else "approvals"
            lines.append(
                f"  {rule.name}: {', '.join(rule.actions)} of images {', '.join(rule.images)}, "
                f"tags {', '.join(rule.tags)} needs {rule.required} {noun} from "
                f"{', '.join(rule.approvers)}; expires after {format_duration(rule.expires_in)}"
            )
        return "\n".join(lines)


def format_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return type(value).__name__


def _join(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) if names else "none"


class _Problems:
    """Collects problems while the whole document is walked, so all are reported together."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path or '(top level)'}: {message}")

    def mapping(
        self,
        value: object,
        path: str,
        required: Sequence[str],
        optional: Sequence[str],
        hints: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any] | None:
        """``value`` as a mapping with only the allowed keys; None (and a problem) if not a mapping."""
        if not isinstance(value, Mapping):
            self.add(path, f"must be a mapping with keys {_join([*required, *optional])}; got {_kind(value)}")
            return None
        allowed = [*required, *optional]
        for key in value:
            if not isinstance(key, str):
                self.add(path, f"key {key!r} must be a string; valid keys: {_join(allowed)}")
            elif key not in allowed:
                hint = (hints or {}).get(key)
                if hint is None:
                    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                    hint = f"did you mean `{close[0]}`? " if close else ""
                    hint += f"valid keys: {_join(allowed)}"
                self.add(_join_path(path, key), f"unknown key; {hint}")
        for key in required:
            if key not in value:
                self.add(_join_path(path, key), "is required")
        return value

    def string(self, value: object, path: str, what: str) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, str):
            self.add(path, f"must not be empty; give {what}")
        else:
            quote = "; quote it" if isinstance(value, (int, float, bool)) else ""
            self.add(path, f"must be a string ({what}); got {_kind(value)}{quote}")
        return None

    def checked(self, value: object, path: str, what: str, check: Callable[[str], str]) -> str | None:
        text = self.string(value, path, what)
        if text is None:
            return None
        try:
            return check(text)
        except UsageError as exc:
            self.add(path, exc.user_message)
            return None

    def strings(self, value: object, path: str, what: str) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.add(path, f"must be a list of {what}, like [a, b]; got {_kind(value)}")
            return None
        if not value:
            self.add(path, f"must not be empty; give {what}")
            return None
        items = [self.string(item, f"{path}[{index}]", what) for index, item in enumerate(value)]
        return (
            None if any(item is None for item in items) else tuple(item for item in items if item is not None)
        )


def _join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _name_problem(name: str) -> str | None:
    if NAME_PATTERN.fullmatch(name):
        return None
    return (
        f"name `{name}` is not valid: use letters, digits, `_`, `.` and `-`, starting with a letter or digit"
    )


def _parse_registry(problems: _Problems, name: str, value: object) -> RegistryConfig | None:
    path = f"registries.{name}"
    data = problems.mapping(
        value,
        path,
        required=("server", "username"),
        optional=("services_hostname", "namespace", "password_env", "password_file"),
        hints={
            "password": "passwords are never kept in the config: name where the workers find it with "
            "`password_env` (an environment variable) or `password_file` (a file)"
        },
    )
    if data is None:
        return None
    before = len(problems.items)
    server = (
        problems.checked(data.get("server"), f"{path}.server", "host[:port]", check_server)
        if "server" in data
        else None
    )
    hostname = None
    if "services_hostname" in data:
        hostname = problems.checked(
            data["services_hostname"],
            f"{path}.services_hostname",
            "a hostname like namespace.example.com",
            check_hostname,
        )
    namespace = None
    if "namespace" in data:
        namespace = problems.checked(
            data["namespace"], f"{path}.namespace", "a namespace like com.example.namespace", check_namespace
        )
    elif hostname is not None:
        # A valid hostname's labels, reversed and lower-cased, are always a valid path component.
        namespace = reverse_hostname(hostname)
    elif "services_hostname" not in data:
        problems.add(
            f"{path}.services_hostname",
            "is required unless `namespace` is given; e.g. `namespace.example.com` gives namespace "
            "`com.example.namespace`",
        )
    username = None
    if "username" in data:
        username = problems.string(
            data["username"], f"{path}.username", "the registry account, like user001@namespace.example.com"
        )
        if username is not None and any(ch.isspace() for ch in username):
            problems.add(f"{path}.username", "must not contain spaces")
    password_env = password_file = None
    if "password_env" in data:
        password_env = problems.string(
            data["password_env"], f"{path}.password_env", "an environment variable name"
        )
        if password_env is not None and not _ENV_NAME.fullmatch(password_env):
            # Not echoed: a password pasted here by mistake must not reach a terminal or log.
            problems.add(
                f"{path}.password_env",
                "is not an environment variable name (value not shown): letters, digits and `_`, "
                "not starting with a digit, e.g. `REGISTRY_PASSWORD`",
            )
    if "password_file" in data:
        password_file = problems.string(data["password_file"], f"{path}.password_file", "a file path")
    if ("password_env" in data) == ("password_file" in data):
        problems.add(
            path,
            "give exactly one of `password_env` (an environment variable, e.g. REGISTRY_PASSWORD) "
            "or `password_file` (e.g. /run/secrets/registry-password)",
        )
    if (
        server is not None
        and namespace is not None
        and len(server) + len(namespace) + 3 > NAME_TOTAL_LENGTH_MAX
    ):
        problems.add(
            path,
            f"server and namespace leave no room for an image name: a reference name is at most "
            f"{NAME_TOTAL_LENGTH_MAX} characters",
        )
    if len(problems.items) > before or server is None or namespace is None or username is None:
        return None
    return RegistryConfig(
        name=name,
        server=server,
        services_hostname=hostname or "",
        namespace=namespace,
        username=username,
        password_env=password_env,
        password_file=password_file,
    )


def _parse_registries(problems: _Problems, value: object) -> dict[str, RegistryConfig]:
    registries: dict[str, RegistryConfig] = {}
    if not isinstance(value, Mapping) or not value:
        problems.add(
            "registries",
            "must be a mapping of registry names to settings, with at least one registry; "
            f"got {_kind(value)}",
        )
        return registries
    for name, settings in value.items():
        name_problem = _name_problem(str(name))
        if not isinstance(name, str) or name_problem:
            problems.add(f"registries.{name}", name_problem or "registry names must be strings")
            continue
        registry = _parse_registry(problems, name, settings)
        if registry is not None:
            registries[name] = registry
    return registries


def _parse_hosts(problems: _Problems, value: object) -> tuple[str, ...] | None:
    hosts = problems.strings(value, "hosts", "Docker host names, like [build-1]")
    if hosts is None:
        return None
    seen: set[str] = set()
    for index, host in enumerate(hosts):
        name_problem = _name_problem(host)
        if name_problem:
            problems.add(f"hosts[{index}]", name_problem)
        elif host in seen:
            problems.add(f"hosts[{index}]", f"`{host}` is listed twice; list each host once")
        seen.add(host)
    return hosts


def _pick_default(
    problems: _Problems, data: Mapping[str, Any], key: str, names: Sequence[str] | None, noun: str, nouns: str
) -> str:
    """The named default, or the only ``noun``; ``names`` None means they are unknown (already broken)."""
    if key not in data:
        if names is not None and len(names) == 1:
            return names[0]
        if names:
            problems.add(key, f"is required when there are several {nouns}: one of {_join(names)}")
        return ""
    name = problems.string(data[key], key, f"the name of one of the {nouns}")
    if name is None:
        return ""
    if names is not None and name not in names:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`? " if close else ""
        problems.add(key, f"no {noun} `{name}` is defined; {hint}defined: {_join(names)}")
    return name


def _parse_duration(problems: _Problems, value: object, path: str) -> int | None:
    valid = "give seconds (90) or a duration like 90s, 30m, 1h, 1h30m"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        problems.add(path, f"must be a duration; got {_kind(value)}; {valid}")
        return None
    if isinstance(value, int):
        seconds = value
    elif value.isdigit():
        seconds = int(value)
    else:
        match = _DURATION.fullmatch(value.strip())
        if not value.strip() or match is None:
            problems.add(path, f"`{value}` is not a duration; {valid}")
            return None
        hours, minutes, secs = (int(group or 0) for group in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        problems.add(path, f"must be positive; {valid}")
        return None
    return seconds


def _parse_timeouts(problems: _Problems, value: object) -> Timeouts:
    keys = ("push", "pull", "tag", "login")
    data = problems.mapping(value, "timeouts", required=(), optional=keys)
    if data is None:
        return Timeouts()
    values = {key: _parse_duration(problems, data[key], f"timeouts.{key}") for key in keys if key in data}
    return Timeouts(**{key: seconds for key, seconds in values.items() if seconds is not None})


def _parse_retries(problems: _Problems, value: object) -> Retries:
    keys = ("attempts", "backoff", "max_backoff")
    data = problems.mapping(value, "retries", required=(), optional=keys)
    if data is None:
        return Retries()
    values: dict[str, int] = {}
    if "attempts" in data:
        attempts = data["attempts"]
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            problems.add("retries.attempts", f"must be a whole number of runs, at least 1; got {_kind(attempts)}")
        elif attempts < 1:
            problems.add("retries.attempts", f"must be at least 1 (1 means no retry); got {attempts}")
        else:
            values["attempts"] = attempts
    for key in ("backoff", "max_backoff"):
        if key in data:
            seconds = _parse_duration(problems, data[key], f"retries.{key}")
            if seconds is not None:
                values[key] = seconds
    retries = Retries(**values)
    if retries.max_backoff < retries.backoff:
        problems.add(
            "retries.max_backoff",
            f"must not be shorter than retries.backoff ({format_duration(retries.backoff)})",
        )
    return retries


def _check_action_patterns(
    problems: _Problems, patterns: Sequence[str], path: str, actions: Sequence[str] = ACTIONS
) -> None:
    for index, pattern in enumerate(patterns):
        if not any(fnmatch.fnmatchcase(action, pattern) for action in actions):
            close = difflib.get_close_matches(pattern, actions, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`? " if close else ""
            problems.add(
                f"{path}[{index}]",
                f"`{pattern}` matches no action; {hint}actions are {_join(actions)}, or a glob like `*`",
            )


def _unclosed_bracket(pattern: str) -> bool:
    """True when a ``[`` opens a character class that never closes (fnmatch would match it literally)."""
    position = pattern.find("[")
    while position != -1:
        # fnmatch lets `]` right after `[` or `[!` be a literal member of the class.
        body = position + 1
        if pattern[body : body + 1] == "!":
            body += 1
        if pattern[body : body + 1] == "]":
            body += 1
        close = pattern.find("]", body)
        if close == -1:
            return True
        position = pattern.find("[", close + 1)
    return False


def _check_globs(problems: _Problems, patterns: Sequence[str], path: str, kind: str) -> None:
    """Globs that can never match what they are matched against are mistakes, reported here."""
    for index, pattern in enumerate(patterns):
        where = f"{path}[{index}]"
        if _unclosed_bracket(pattern):
            problems.add(where, f"`{pattern}`: a `[` is never closed; close it with `]`, or drop it")
        elif kind == "images" and pattern != pattern.lower():
            problems.add(
                where, f"`{pattern}` can never match: image names are lower-case; use `{pattern.lower()}`"
            )
        elif kind == "images" and (":" in pattern or "@" in pattern):
            problems.add(
                where,
                f"`{pattern}` can never match: give the image name only, and the tag under `tags`",
            )
        elif kind == "tags" and ("/" in pattern or ":" in pattern):
            problems.add(where, f"`{pattern}` can never match: a tag has no `/` or `:`")


def _check_named_globs(
    problems: _Problems, patterns: Sequence[str], path: str, names: Sequence[str] | None, noun: str
) -> None:
    """Registry and host globs must each match a configured name (unknown names: nothing to check)."""
    if names is None:
        return
    for index, pattern in enumerate(patterns):
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            close = difflib.get_close_matches(pattern, list(names), n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`? " if close else ""
            problems.add(
                f"{path}[{index}]", f"`{pattern}` matches no configured {noun}; {hint}defined: {_join(names)}"
            )


@dataclass(frozen=True)
class _Names:
    """What access rules may refer to; None where that part of the config is itself broken."""

    registries: Sequence[str] | None
    hosts: Sequence[str] | None


_GLOB_KEYS = (
    ("images", "image name globs, like [centos7-*]"),
    ("tags", 'tag globs, like ["*"]'),
    ("registries", 'registry name globs, like ["*"]'),
    ("hosts", "Docker host name globs, like [build-*]"),
)


def _parse_role(problems: _Problems, name: str, value: object, names: _Names) -> Role | None:
    path = f"access.roles.{name}"
    data = problems.mapping(value, path, required=("actions",), optional=tuple(key for key, _ in _GLOB_KEYS))
    if data is None:
        return None
    before = len(problems.items)
    actions = (
        problems.strings(data.get("actions"), f"{path}.actions", "actions or globs, like [push, pull]")
        if "actions" in data
        else None
    )
    if actions is not None:
        _check_action_patterns(problems, actions, f"{path}.actions")
    globs: dict[str, tuple[str, ...]] = {}
    for key, what in _GLOB_KEYS:
        if key in data:
            patterns = problems.strings(data[key], f"{path}.{key}", what)
            if patterns is not None:
                _check_globs(problems, patterns, f"{path}.{key}", key)
                globs[key] = patterns
    _check_named_globs(
        problems, globs.get("registries", ()), f"{path}.registries", names.registries, "registry"
    )
    _check_named_globs(problems, globs.get("hosts", ()), f"{path}.hosts", names.hosts, "host")
    if len(problems.items) > before or actions is None:
        return None
    return Role(name=name, actions=actions, **globs)


def _check_ids(
    problems: _Problems, values: Sequence[str], path: str, pattern: re.Pattern[str], message: str
) -> None:
    for position, value in enumerate(values):
        if not pattern.fullmatch(value):
            problems.add(f"{path}[{position}]", f"`{value}` {message}")


_USER_OR_EVERYONE = re.compile(rf"{USER_ID.pattern}|\{EVERYONE}")


_USER_HINT = 'is not a Slack user ID: give IDs like U0ADMIN (in Slack: profile → ⋮ → Copy member ID), or "*" for everyone'
_GROUP_HINT = (
    "is not a Slack user-group ID: give the group's ID like S0DEVOPS (from Slack's usergroups.list), "
    "not its @handle or name"
)
_CHANNEL_HINT = (
    "is not a Slack channel ID: give IDs like C0OPS (in Slack: channel details → About → Channel ID); "
    "commands carry the channel's ID, never its name"
)


def _parse_grant(
    problems: _Problems, index: int, value: object, roles: Mapping[str, object], roles_ok: bool
) -> Grant | None:
    path = f"access.grants[{index}]"
    data = problems.mapping(value, path, required=("role",), optional=("users", "usergroups", "channels"))
    if data is None:
        return None
    before = len(problems.items)
    role = problems.string(data.get("role"), f"{path}.role", "a role name") if "role" in data else None
    if role is not None and roles_ok and role not in roles:
        close = difflib.get_close_matches(role, list(roles), n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`? " if close else ""
        problems.add(
            f"{path}.role", f"no role `{role}` is defined; {hint}defined roles: {_join(list(roles))}"
        )
    if "users" not in data and "usergroups" not in data:
        problems.add(
            f"{path}.users",
            'is required unless `usergroups` is given: Slack user IDs like [U0ADMIN], or ["*"] for '
            "everyone; `usergroups` takes user-group IDs like [S0DEVOPS]",
        )
    lists: dict[str, tuple[str, ...]] = {}
    for key, what, pattern, hint in (
        ("users", 'Slack user IDs, or "*"', _USER_OR_EVERYONE, _USER_HINT),
        ("usergroups", "Slack user-group IDs", USERGROUP_ID, _GROUP_HINT),
        ("channels", "Slack channel IDs", CHANNEL_ID, _CHANNEL_HINT),
    ):
        if key not in data:
            continue
        values = problems.strings(data[key], f"{path}.{key}", what)
        if values is None:
            continue
        _check_ids(problems, values, f"{path}.{key}", pattern, hint)
        lists[key] = values
    if len(problems.items) > before or role is None:
        return None
    return Grant(role=role, index=index, **lists)


def _parse_count(problems: _Problems, value: object, path: str) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"must be a whole number of approvals, at least 1; got {_kind(value)}")
        return None
    if value < 1:
        problems.add(path, f"must be at least 1; got {value}")
        return None
    return value


def _parse_approval(
    problems: _Problems, index: int, value: object, roles: Sequence[str], roles_ok: bool
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
    fields: dict[str, Any] = {}
    for key, what in _GLOB_KEYS[:2]:
        if key in data:
            patterns = problems.strings(data[key], f"{path}.{key}", what)
            if patterns is not None:
                _check_globs(problems, patterns, f"{path}.{key}", key)
                fields[key] = patterns
    if "actions" in data:
        actions = problems.strings(data["actions"], f"{path}.actions", "actions to protect, like [push]")
        if actions is not None:
            _check_action_patterns(problems, actions, f"{path}.actions", PROTECTABLE_ACTIONS)
            fields["actions"] = actions
    approvers = (
        problems.strings(data["approvers"], f"{path}.approvers", "role names or Slack user IDs")
        if "approvers" in data
        else None
    )
    for position, approver in enumerate(approvers or ()):
        if approver in roles or USER_ID.fullmatch(approver) or not roles_ok:
            continue
        close = difflib.get_close_matches(approver, list(roles), n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`? " if close else ""
        problems.add(
            f"{path}.approvers[{position}]",
            f"no role `{approver}` is defined and it is not a Slack user ID; {hint}"
            f"give role names ({_join(list(roles))}) or user IDs like U0ADMIN",
        )
    if "required" in data:
        required = _parse_count(problems, data["required"], f"{path}.required")
        if required is not None:
            fields["required"] = required
    if "expires_in" in data:
        expires_in = _parse_duration(problems, data["expires_in"], f"{path}.expires_in")
        if expires_in is not None:
            fields["expires_in"] = expires_in
    if approvers is not None and all(
        approver not in roles and USER_ID.fullmatch(approver) for approver in approvers
    ):
        # Only user IDs: the rule can never be satisfied if it asks for more of them than listed.
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


def _parse_access(problems: _Problems, value: object, names: _Names) -> AccessConfig:
    if value is None:
        return AccessConfig()
    data = problems.mapping(value, "access", required=(), optional=("roles", "grants", "approvals"))
    if data is None:
        return AccessConfig()
    roles: dict[str, Role] = {}
    roles_value = {} if data.get("roles") is None else data["roles"]
    roles_ok = isinstance(roles_value, Mapping)
    if not roles_ok:
        problems.add("access.roles", f"must be a mapping of role names to settings; got {_kind(roles_value)}")
    else:
        for name, settings in roles_value.items():
            name_problem = _name_problem(str(name))
            if not isinstance(name, str) or name_problem:
                problems.add(f"access.roles.{name}", name_problem or "role names must be strings")
                continue
            role = _parse_role(problems, name, settings, names)
            if role is not None:
                roles[name] = role
    # A rule naming a role that is defined but broken is not also reported as undefined.
    defined = roles_value if roles_ok else {}
    grants_value = [] if data.get("grants") is None else data["grants"]
    grants: list[Grant] = []
    if not isinstance(grants_value, list):
        problems.add(
            "access.grants",
            f"must be a list of {{role, users, usergroups, channels}} mappings; got {_kind(grants_value)}",
        )
    else:
        for index, grant_value in enumerate(grants_value):
            grant = _parse_grant(problems, index, grant_value, defined, roles_ok)
            if grant is not None and grant.role in roles:
                grants.append(grant)
    approvals_value = [] if data.get("approvals") is None else data["approvals"]
    approvals: list[ApprovalRule] = []
    if not isinstance(approvals_value, list):
        problems.add(
            "access.approvals",
            "must be a list of {images, tags, actions, approvers, required, expires_in} mappings; "
            f"got {_kind(approvals_value)}",
        )
    else:
        role_names = [name for name in defined if isinstance(name, str)]
        for index, rule_value in enumerate(approvals_value):
            rule = _parse_approval(problems, index, rule_value, role_names, roles_ok)
            if rule is not None:
                approvals.append(rule)
    return AccessConfig(roles=roles, grants=tuple(grants), approvals=tuple(approvals))


def _parse_channel(problems: _Problems, top: Mapping[str, Any], key: str, example: str) -> str | None:
    if top.get(key) is None:
        return None
    channel = problems.string(top[key], key, f"a Slack channel ID like {example}")
    if channel is not None and not _CHANNEL.fullmatch(channel):
        problems.add(key, f"`{channel}` is not a Slack channel: give its ID, like {example}, or `#name`")
        return None
    return channel


_TOP_LEVEL_REQUIRED = ("registries", "hosts")
_TOP_LEVEL_OPTIONAL = (
    "default_registry",
    "default_host",
    "notify_channel",
    "audit_channel",
    "timeouts",
    "retries",
    "access",
)


def parse_config(data: object) -> Config:
    """Validate a loaded YAML document and build the Config; ConfigError lists every problem."""
    problems = _Problems()
    if data is None:
        raise ConfigError(
            ["(top level): the configuration is empty; it needs at least `registries` and `hosts`"]
        )
    top = problems.mapping(data, "", required=_TOP_LEVEL_REQUIRED, optional=_TOP_LEVEL_OPTIONAL)
    if top is None:
        raise ConfigError(problems.items)

    registries = _parse_registries(problems, top["registries"]) if "registries" in top else {}
    registries_value = top.get("registries")
    # Names of broken registries still count as defined, so one mistake is not reported twice.
    registry_names = (
        [name for name in registries_value if isinstance(name, str)]
        if isinstance(registries_value, Mapping)
        else None
    )
    default_registry = _pick_default(
        problems, top, "default_registry", registry_names, "registry", "registries"
    )

    hosts = _parse_hosts(problems, top["hosts"]) if "hosts" in top else None
    default_host = _pick_default(
        problems,
        top,
        "default_host",
        list(dict.fromkeys(hosts)) if hosts is not None else None,
        "host",
        "hosts",
    )

    notify_channel = _parse_channel(problems, top, "notify_channel", "C0DEPLOYS")
    audit_channel = _parse_channel(problems, top, "audit_channel", "C0AUDIT")

    timeouts = _parse_timeouts(problems, top["timeouts"]) if top.get("timeouts") is not None else Timeouts()
    retries = _parse_retries(problems, top["retries"]) if top.get("retries") is not None else Retries()
    # Broken registries and hosts still count as defined, so one mistake is not reported twice.
    names = _Names(
        registries=registry_names,
        hosts=list(dict.fromkeys(hosts)) if hosts is not None else None,
    )
    access = _parse_access(problems, top.get("access"), names)

    if problems.items:
        raise ConfigError(problems.items)
    return Config(
        registries=registries,
        default_registry=default_registry,
        hosts=hosts or (),
        default_host=default_host,
        notify_channel=notify_channel,
        access=access,
        timeouts=timeouts,
        audit_channel=audit_channel,
        retries=retries,
    )


class _Loader(yaml.SafeLoader):
    """A safe loader that records duplicate keys, which plain YAML loading silently drops."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    self.duplicates.append(
                        f"line {key_node.start_mark.line + 1}: duplicate key `{key_node.value}`; "
                        "give each key once (the earlier value would be ignored)"
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML config file at ``path``; ConfigError names the file."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        ways = f"give --config PATH, set ${CONFIG_ENV}, or create ./{DEFAULT_CONFIG_PATH}"
        raise ConfigError([f"{source}: no such file; {ways}"], source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError([f"{source}: cannot be read ({reason})"], source=source) from None
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        # Only the position and the problem: the parser's snippet of the line could show a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError([f"{source}{where}: invalid YAML: {problem}"], source=source) from None
    finally:
        loader.dispose()
    duplicates = [f"{source}: {item}" for item in loader.duplicates]
    try:
        config = parse_config(data)
    except ConfigError as exc:
        raise ConfigError([*duplicates, *exc.problems], source=source) from None
    if duplicates:
        raise ConfigError(duplicates, source=source)
    return config


def resolve_config_path(explicit: str | None, environ: Mapping[str, str]) -> Path:
    """``--config PATH``, else ``$REGOPS_CONFIG``, else ``./regops.yaml``."""
    chosen = explicit or environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    return Path(chosen).expanduser()
