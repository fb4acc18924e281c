"""The YAML configuration model: registries, Docker hosts, access, timeouts.

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
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from bot.commands import ACTIONS, NAME_PATTERN
from bot.errors import ConfigError, UsageError
from bot.references import (
    NAME_TOTAL_LENGTH_MAX,
    check_hostname,
    check_namespace,
    check_server,
    reverse_hostname,
)

CONFIG_ENV = "REGOPS_CONFIG"
DEFAULT_CONFIG_PATH = "regops.yaml"

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SLACK_ID = re.compile(r"[A-Z0-9]+")
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
    name: str
    actions: tuple[str, ...]
    images: tuple[str, ...] = ("*",)
    tags: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        for name in ("actions", "images", "tags"):
            object.__setattr__(self, name, _frozen_strings(getattr(self, name), f"Role.{name}"))


@dataclass(frozen=True)
class Grant:
    role: str
    users: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", _frozen_strings(self.users, "Grant.users"))


@dataclass(frozen=True)
class AccessConfig:
    roles: Mapping[str, Role] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", _frozen_mapping(self.roles))
        object.__setattr__(self, "grants", tuple(self.grants))


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
class Config:
    registries: Mapping[str, RegistryConfig]
    default_registry: str
    hosts: tuple[str, ...]
    default_host: str
    notify_channel: str | None
    access: AccessConfig
    timeouts: Timeouts

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
        timeouts = self.timeouts
        lines.append(
            "timeouts: "
            + ", ".join(
                f"{action} {_format_duration(timeouts.for_action(action))}"
                for action in ("push", "pull", "tag", "login")
            )
        )
        roles = self.access.roles
        lines.append(f"access: {len(roles)} role(s), {len(self.access.grants)} grant(s)")
        if not self.access.grants:
            lines.append("  no grants: nobody may run anything but help")
        for role in roles.values():
            lines.append(
                f"  role {role.name}: actions {', '.join(role.actions)}; images {', '.join(role.images)}; "
                f"tags {', '.join(role.tags)}"
            )
        return "\n".join(lines)


def _format_duration(seconds: int) -> str:
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


def _check_action_patterns(problems: _Problems, patterns: Sequence[str], path: str) -> None:
    for index, pattern in enumerate(patterns):
        if not any(fnmatch.fnmatchcase(action, pattern) for action in ACTIONS):
            close = difflib.get_close_matches(pattern, ACTIONS, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`? " if close else ""
            problems.add(
                f"{path}[{index}]",
                f"`{pattern}` matches no action; {hint}actions are {_join(ACTIONS)}, or a glob like `*`",
            )


def _parse_role(problems: _Problems, name: str, value: object) -> Role | None:
    path = f"access.roles.{name}"
    data = problems.mapping(value, path, required=("actions",), optional=("images", "tags"))
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
    for key, what in (("images", "image name globs, like [centos7-*]"), ("tags", 'tag globs, like ["*"]')):
        if key in data:
            patterns = problems.strings(data[key], f"{path}.{key}", what)
            if patterns is not None:
                globs[key] = patterns
    for index, pattern in enumerate(globs.get("images", ())):
        if pattern != pattern.lower():
            problems.add(
                f"{path}.images[{index}]",
                f"`{pattern}` can never match: image names are lower-case; use `{pattern.lower()}`",
            )
    if len(problems.items) > before or actions is None:
        return None
    return Role(name=name, actions=actions, **globs)


def _parse_grant(
    problems: _Problems, index: int, value: object, roles: Mapping[str, object], roles_ok: bool
) -> Grant | None:
    path = f"access.grants[{index}]"
    data = problems.mapping(value, path, required=("role", "users"), optional=())
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
    users = (
        problems.strings(data.get("users"), f"{path}.users", "Slack user IDs") if "users" in data else None
    )
    for position, user in enumerate(users or ()):
        if user != "*" and not _SLACK_ID.fullmatch(user):
            problems.add(
                f"{path}.users[{position}]",
                f"`{user}` is not a Slack user ID: give IDs like U0ADMIN "
                '(in Slack: profile → ⋮ → Copy member ID), or "*" for everyone',
            )
    if len(problems.items) > before or role is None or users is None:
        return None
    return Grant(role=role, users=users)


def _parse_access(problems: _Problems, value: object) -> AccessConfig:
    if value is None:
        return AccessConfig()
    data = problems.mapping(value, "access", required=(), optional=("roles", "grants"))
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
            role = _parse_role(problems, name, settings)
            if role is not None:
                roles[name] = role
    grants_value = [] if data.get("grants") is None else data["grants"]
    grants: list[Grant] = []
    if not isinstance(grants_value, list):
        problems.add(
            "access.grants", f"must be a list of {{role, users}} mappings; got {_kind(grants_value)}"
        )
    else:
        # A grant naming a role that is defined but broken is not also reported as undefined.
        defined = roles_value if roles_ok else {}
        for index, grant_value in enumerate(grants_value):
            grant = _parse_grant(problems, index, grant_value, defined, roles_ok)
            if grant is not None and grant.role in roles:
                grants.append(grant)
    return AccessConfig(roles=roles, grants=tuple(grants))


_TOP_LEVEL_REQUIRED = ("registries", "hosts")
_TOP_LEVEL_OPTIONAL = ("default_registry", "default_host", "notify_channel", "timeouts", "access")


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

    notify_channel = None
    if top.get("notify_channel") is not None:
        notify_channel = problems.string(
            top["notify_channel"], "notify_channel", "a Slack channel ID like C0DEPLOYS"
        )
        if notify_channel is not None and not _CHANNEL.fullmatch(notify_channel):
            problems.add(
                "notify_channel",
                f"`{notify_channel}` is not a Slack channel: give its ID, like C0DEPLOYS, or `#name`",
            )

    timeouts = _parse_timeouts(problems, top["timeouts"]) if top.get("timeouts") is not None else Timeouts()
    access = _parse_access(problems, top.get("access"))

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
