"""The ``registries``, ``hosts`` and default sections: where images go, and which Docker hosts push them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from workers.kernel.actions import REGISTRY_QUEUE
from workers.kernel.config.model import RegistryConfig
from workers.kernel.config.problems import Problems, did_you_mean, join_names, kind, name_problem
from workers.kernel.references import (
    NAME_TOTAL_LENGTH_MAX,
    check_hostname,
    check_namespace,
    check_server,
    reverse_hostname,
)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_PASSWORD_HINT = (
    "passwords are never kept in the config: name where the workers find it with "
    "`password_env` (an environment variable) or `password_file` (a file)"
)

_EVENTS_TOKEN_HINT = (
    "the token this registry's notifications carry is never kept in the config: name where `serve` finds it "
    "with `events_token_env` (an environment variable) or `events_token_file` (a file)"
)


def parse_registries(problems: Problems, value: object) -> dict[str, RegistryConfig]:
    registries: dict[str, RegistryConfig] = {}
    if not isinstance(value, Mapping) or not value:
        problems.add(
            "registries",
            "must be a mapping of registry names to settings, with at least one registry; "
            f"got {kind(value)}",
        )
        return registries
    for name, settings in value.items():
        problem = name_problem(str(name))
        if not isinstance(name, str) or problem:
            problems.add(f"registries.{name}", problem or "registry names must be strings")
            continue
        registry = _parse_registry(problems, name, settings)
        if registry is not None:
            registries[name] = registry
    _shared_events_tokens(problems, registries)
    return registries


def _shared_events_tokens(problems: Problems, registries: Mapping[str, RegistryConfig]) -> None:
    """Two registries reading their events token from one place would share it: the token names the sender."""
    owners: dict[tuple[str, str], str] = {}
    for registry in registries.values():
        for key, source in (("events_token_env", registry.events_token_env),
                            ("events_token_file", registry.events_token_file)):
            if source is None:
                continue
            first = owners.setdefault((key, source), registry.name)
            if first != registry.name:
                problems.add(f"registries.{registry.name}.{key}", f"is also where registry `{first}` reads its "
                             "events token; give each registry a token of its own (the token tells regops "
                             "which registry sent an envelope)")


def _parse_registry(problems: Problems, name: str, value: object) -> RegistryConfig | None:
    path = f"registries.{name}"
    data = problems.mapping(
        value,
        path,
        required=("server", "username"),
        optional=("services_hostname", "namespace", "password_env", "password_file", "api_url",
                  "events_token_env", "events_token_file"),
        hints={"password": _PASSWORD_HINT, "events_token": _EVENTS_TOKEN_HINT},
    )
    if data is None:
        return None
    before = len(problems.items)
    server = (
        problems.checked(data["server"], f"{path}.server", "host[:port]", check_server)
        if "server" in data
        else None
    )
    hostname, namespace = _namespace(problems, path, data)
    username = _username(problems, path, data)
    password_env, password_file = _password_source(problems, path, data)
    events_token_env, events_token_file = _events_token_source(problems, path, data)
    api_url = _api_url(problems, path, data)
    if server is not None and namespace is not None and len(server) + len(namespace) + 3 > NAME_TOTAL_LENGTH_MAX:
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
        api_url=api_url,
        events_token_env=events_token_env,
        events_token_file=events_token_file,
    )


def _api_url(problems: Problems, path: str, data: Mapping[str, Any]) -> str:
    if "api_url" not in data:
        return ""
    value = problems.string(data["api_url"], f"{path}.api_url", "a URL like https://registry.internal:5000")
    if value is None:
        return ""
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/") \
            or parsed.username or parsed.password or parsed.query:
        # Not echoed: a URL with a password in it must not reach a terminal or log.
        problems.add(f"{path}.api_url", "must be http:// or https:// and a host[:port], with no path, user or "
                     "password (value not shown), e.g. `http://registry:5000`")
        return ""
    return value.rstrip("/")


def _namespace(problems: Problems, path: str, data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The services hostname (if given) and the namespace: explicit, else the hostname reversed."""
    hostname = None
    if "services_hostname" in data:
        hostname = problems.checked(
            data["services_hostname"],
            f"{path}.services_hostname",
            "a hostname like namespace.example.com",
            check_hostname,
        )
    if "namespace" in data:
        namespace = problems.checked(
            data["namespace"], f"{path}.namespace", "a namespace like com.example.namespace", check_namespace
        )
        return hostname, namespace
    if hostname is not None:
        # A valid hostname's labels, reversed and lower-cased, are always a valid path component.
        return hostname, reverse_hostname(hostname)
    if "services_hostname" not in data:
        problems.add(
            f"{path}.services_hostname",
            "is required unless `namespace` is given; e.g. `namespace.example.com` gives namespace "
            "`com.example.namespace`",
        )
    return hostname, None


def _username(problems: Problems, path: str, data: Mapping[str, Any]) -> str | None:
    if "username" not in data:
        return None
    username = problems.string(
        data["username"], f"{path}.username", "the registry account, like user001@namespace.example.com"
    )
    if username is not None and any(ch.isspace() for ch in username):
        problems.add(f"{path}.username", "must not contain spaces")
        return None
    return username


def _password_source(problems: Problems, path: str, data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``password_env`` or ``password_file``, exactly one; a value that is no variable name is not echoed."""
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
    return password_env, password_file


def _events_token_source(problems: Problems, path: str, data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``events_token_env`` or ``events_token_file``, at most one (neither: no notifications from this registry)."""
    env = file = None
    if "events_token_env" in data:
        env = problems.string(data["events_token_env"], f"{path}.events_token_env", "an environment variable name")
        if env is not None and not _ENV_NAME.fullmatch(env):
            # Not echoed: a token pasted here by mistake must not reach a terminal or log.
            problems.add(
                f"{path}.events_token_env",
                "is not an environment variable name (value not shown): letters, digits and `_`, "
                "not starting with a digit, e.g. `REGISTRY_EVENTS_TOKEN`",
            )
            env = None
    if "events_token_file" in data:
        file = problems.string(data["events_token_file"], f"{path}.events_token_file", "an absolute file path")
        if file is not None and not file.startswith("/"):
            # Read by `serve`, whose working directory is nobody's business: the path must not depend on it.
            problems.add(f"{path}.events_token_file", "must be an absolute path (value not shown), "
                         "e.g. `/run/secrets/registry-events-token`")
            file = None
    if "events_token_env" in data and "events_token_file" in data:
        problems.add(path, "give at most one of `events_token_env` (e.g. REGISTRY_EVENTS_TOKEN) and "
                     "`events_token_file` (e.g. /run/secrets/registry-events-token), not both")
        return None, None
    return env, file


def parse_hosts(problems: Problems, value: object) -> tuple[str, ...] | None:
    hosts = problems.strings(value, "hosts", "Docker host names, like [build-1]")
    if hosts is None:
        return None
    seen: set[str] = set()
    for index, host in enumerate(hosts):
        problem = name_problem(host)
        if problem:
            problems.add(f"hosts[{index}]", problem)
        elif host == REGISTRY_QUEUE:
            problems.add(f"hosts[{index}]", f"`{REGISTRY_QUEUE}` is the name of the registry queue (promote, delete, "
                         "rollback and the registry queries run there); call the Docker host something else")
        elif host in seen:
            problems.add(f"hosts[{index}]", f"`{host}` is listed twice; list each host once")
        seen.add(host)
    return hosts


def pick_default(
    problems: Problems, data: Mapping[str, Any], key: str, names: Sequence[str] | None, noun: str, nouns: str
) -> str:
    """The named default, or the only ``noun``; ``names`` None means they are unknown (already broken)."""
    if key not in data:
        if names is not None and len(names) == 1:
            return names[0]
        if names:
            problems.add(key, f"is required when there are several {nouns}: one of {join_names(names)}")
        return ""
    name = problems.string(data[key], key, f"the name of one of the {nouns}")
    if name is None:
        return ""
    if names is not None and name not in names:
        problems.add(key, f"no {noun} `{name}` is defined; {did_you_mean(name, names)}defined: {join_names(names)}")
    return name
