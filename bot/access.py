"""Deny-by-default policy: who may run which action on which image and tag.

A user may run an action only when a grant names them (or everyone, ``"*"``) and gives
a role whose ``actions``, ``images`` and ``tags`` globs all match.  ``help`` is open to
everyone.  The policy is pure: it reads the validated access config and nothing else.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from bot.config import AccessConfig, Grant, Role
from bot.errors import ConfigError

OPEN_ACTIONS = frozenset({"help"})
"""Actions every user may run, whatever the grants say."""

EVERYONE = "*"


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorization: ``rule`` is for logs and audit, ``reason`` for the user."""

    allowed: bool
    rule: str
    reason: str


def _matches(value: str, patterns: Iterable[str]) -> bool:
    # Case-sensitive on every platform: `Latest` and `latest` are different tags.
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _target(action: str, image: str | None, tag: str | None) -> str:
    if image is None:
        return f"run `{action}`"
    return f"{action} `{image}:{tag}`" if tag is not None else f"{action} `{image}`"


class Policy:
    """Answers "may this user do this?" from an :class:`AccessConfig`."""

    def __init__(self, access: AccessConfig) -> None:
        missing = [
            f"access.grants[{index}].role: no role `{grant.role}`"
            for index, grant in enumerate(access.grants)
            if grant.role not in access.roles
        ]
        if missing:
            # Config loading already rejects these; a hand-built AccessConfig must not slip past.
            raise ConfigError(missing)
        self._access = access

    def _role_allows(self, role: Role, action: str, image: str | None, tag: str | None) -> bool:
        if not _matches(action, role.actions):
            return False
        if image is not None and not _matches(image, role.images):
            return False
        return tag is None or _matches(tag, role.tags)

    def _grants_for(self, user_id: str) -> list[tuple[int, Grant]]:
        return [
            (index, grant)
            for index, grant in enumerate(self._access.grants)
            if user_id in grant.users or EVERYONE in grant.users
        ]

    def decide(self, user_id: str, action: str, image: str | None = None, tag: str | None = None) -> Decision:
        """Whether ``user_id`` may run ``action`` (on ``image:tag``; both None for ``login``)."""
        target = _target(action, image, tag)
        if action in OPEN_ACTIONS:
            return Decision(True, f"{action} is open to everyone", f"you may {target}")
        grants = self._grants_for(user_id)
        if not grants:
            return Decision(
                False,
                "no grant matches",
                f"you may not {target}: no grant gives you any role; ask a regops admin for access",
            )
        for index, grant in grants:
            role = self._access.roles[grant.role]
            if self._role_allows(role, action, image, tag):
                return Decision(
                    True, f"grants[{index}] role {role.name}", f"you may {target} (role {role.name})"
                )
        roles = ", ".join(dict.fromkeys(grant.role for _, grant in grants))
        return Decision(
            False,
            f"no role allows it (roles: {roles})",
            f"you may not {target}: no grant gives you a role that allows it (your roles: {roles})",
        )
