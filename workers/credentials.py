"""Registry credentials on a worker: the configured registries, each password read when a job needs it.

The config (``Config.registries``, loaded by the kernel's loader) says, for each registry
name a job may carry, the server, the username and where the password is.  The password
itself is read when a job asks for it (so a rotated secret file is picked up without a
restart) and is only ever held as a :class:`Secret`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from workers.errors import CredentialsError
from workers.kernel.config import RegistryConfig
from workers.kernel.secrets import Secret


@dataclass(frozen=True)
class RegistryCredentials:
    """What ``docker login`` needs for one registry; the password stays wrapped."""

    server: str
    username: str
    password: Secret
    api_url: str = ""
    """Where the registry's API is reached, when not at ``server`` (see ``RegistryConfig.api_url``)."""


def read_password(registry: RegistryConfig, environ: Mapping[str, str]) -> Secret:
    """The registry's password now, from its variable or file; CredentialsError names the source, never a value."""
    missing = f"the password of registry '{registry.name}' is missing on this worker"
    if registry.password_env:
        value = environ.get(registry.password_env, "")
        if not value:
            raise CredentialsError(f"{missing} (environment variable {registry.password_env} is not set)")
        return Secret(value)
    if not registry.password_file:
        raise CredentialsError(f"{missing} (the config names no password_env or password_file)")
    try:
        value = Path(registry.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise CredentialsError(
            f"{missing} (cannot read {registry.password_file}: {exc.strerror or 'unreadable'})"
        ) from None
    if not value:
        raise CredentialsError(f"{missing} ({registry.password_file} is empty)")
    return Secret(value)


class CredentialStore:
    """The configured registries by name; :meth:`get` reads a password at call time."""

    def __init__(
        self, registries: Mapping[str, RegistryConfig], environ: Mapping[str, str] | None = None
    ) -> None:
        self._registries = dict(registries)
        self._environ = os.environ if environ is None else environ

    def names(self) -> list[str]:
        return sorted(self._registries)

    def entry(self, name: str) -> RegistryConfig:
        try:
            return self._registries[name]
        except KeyError:
            raise CredentialsError(f"registry '{name}' is not configured on this worker") from None

    def get(self, name: str) -> RegistryCredentials:
        registry = self.entry(name)
        return RegistryCredentials(registry.server, registry.username, read_password(registry, self._environ),
                                   registry.api_url)

    def missing_passwords(self) -> list[str]:
        """User-safe sentences for every registry whose password cannot be read now."""
        problems = []
        for name in self.names():
            try:
                self.get(name)
            except CredentialsError as exc:
                problems.append(exc.user_message)
        return problems

    def passwords(self) -> list[str]:
        """The current password of every registry whose password can be read: what the log mask hides."""
        values = []
        for name in self.names():
            try:
                values.append(self.get(name).password.reveal())
            except CredentialsError:
                continue
        return values

    def __repr__(self) -> str:
        return f"CredentialStore(registries={self.names()!r})"
