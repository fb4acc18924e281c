"""Registry credentials from the worker's own config file (the ``registries:`` section only).

The bot validates the whole regops config; a worker needs only to know, for each
registry name a job may carry, the server, the username and where the password is.
The password itself is read when a job asks for it (so a rotated secret file is
picked up without a restart) and is only ever held as a :class:`Secret`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workers.errors import ConfigError
from workers.kernel.secrets import Secret

CONFIG_ENV = "REGOPS_CONFIG"
DEFAULT_CONFIG = "regops.yaml"


@dataclass(frozen=True)
class RegistryCredentials:
    """What ``docker login`` needs for one registry; the password stays wrapped."""

    server: str
    username: str
    password: Secret


@dataclass(frozen=True)
class RegistryEntry:
    """One configured registry: its server, login name and the password's source."""

    name: str
    server: str
    username: str
    password_env: str | None = None
    password_file: str | None = None

    def credentials(self, environ: Mapping[str, str]) -> RegistryCredentials:
        return RegistryCredentials(self.server, self.username, Secret(self._password(environ)))

    def _password(self, environ: Mapping[str, str]) -> str:
        if self.password_env:
            value = environ.get(self.password_env, "")
            if not value:
                raise ConfigError(
                    f"the password of registry '{self.name}' is missing on this worker "
                    f"(environment variable {self.password_env} is not set)"
                )
            return value
        assert self.password_file is not None
        try:
            value = Path(self.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"the password of registry '{self.name}' is missing on this worker "
                f"(cannot read {self.password_file}: {exc.strerror or 'unreadable'})"
            ) from None
        if not value:
            raise ConfigError(
                f"the password of registry '{self.name}' is missing on this worker ({self.password_file} is empty)"
            )
        return value


class CredentialStore:
    """Registry entries by name; :meth:`get` resolves a password at call time."""

    def __init__(
        self, entries: Mapping[str, RegistryEntry], environ: Mapping[str, str] | None = None
    ) -> None:
        self._entries = dict(entries)
        self._environ = os.environ if environ is None else environ

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> RegistryEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"registry '{name}' is not configured on this worker") from None

    def get(self, name: str) -> RegistryCredentials:
        return self.entry(name).credentials(self._environ)

    def missing_passwords(self) -> list[str]:
        """User-safe sentences for every registry whose password cannot be read now."""
        problems = []
        for name in self.names():
            try:
                self.get(name)
            except ConfigError as exc:
                problems.append(exc.user_message)
        return problems

    def __repr__(self) -> str:
        return f"CredentialStore(registries={self.names()!r})"


def resolve_config_path(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """The explicit path, else ``$REGOPS_CONFIG``, else ``./regops.yaml``."""
    if path:
        return Path(path)
    env = os.environ if environ is None else environ
    return Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG)


def parse_registries(data: Any, source: str = "config") -> dict[str, RegistryEntry]:
    """``registries:`` of a loaded config document → entries; every problem reported at once."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    registries = data.get("registries")
    if not isinstance(registries, Mapping) or not registries:
        raise ConfigError(f"{source}: registries: expected a mapping of registry name to settings")
    problems: list[str] = []
    entries: dict[str, RegistryEntry] = {}
    for name, settings in registries.items():
        where = f"registries.{name}"
        if not isinstance(settings, Mapping):
            problems.append(
                f"{where}: expected a mapping with server, username and password_env or password_file"
            )
            continue
        values: dict[str, str] = {}
        for key in ("server", "username", "password_env", "password_file"):
            value = settings.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{where}.{key}: expected a non-empty string")
                continue
            values[key] = value.strip()
        for key in ("server", "username"):
            if key not in settings:
                problems.append(f"{where}.{key}: required")
        if "password" in settings:
            problems.append(f"{where}.password: not allowed; use password_env or password_file")
        has_env, has_file = "password_env" in settings, "password_file" in settings
        if has_env == has_file:
            problems.append(f"{where}: set exactly one of password_env and password_file")
        if "server" in values and "username" in values and has_env != has_file:
            entries[str(name)] = RegistryEntry(
                name=str(name),
                server=values["server"],
                username=values["username"],
                password_env=values.get("password_env"),
                password_file=values.get("password_file"),
            )
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return entries


def read_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Any, str]:
    """The loaded YAML document of the config file (see :func:`resolve_config_path`) and its path."""
    config_path = resolve_config_path(path, environ)
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{config_path}: not valid YAML{where}") from None
    return data, str(config_path)


def load_credentials(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> CredentialStore:
    """Read the config file (see :func:`resolve_config_path`) and return its registry credentials."""
    data, source = read_config(path, environ)
    return CredentialStore(parse_registries(data, source), environ)
