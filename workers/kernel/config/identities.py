"""What user, user-group and channel identities must look like: a seam the front end fills in.

The kernel knows that grants name users, user groups and channels, not the format of
their IDs: that belongs to the chat front end (``bot/slack/identities.py``).  Its loader
hands its own :class:`IdentityRules` to :func:`~workers.kernel.config.loading.load_config`,
and their problems are reported in place, with the kernel's, in one ConfigError.  Without
them (the worker, which never reads access rules) an identity only has to be a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from workers.kernel.config.problems import did_you_mean, join_names


class IdentityRules(Protocol):
    """Each check gets a non-empty string and returns what is wrong with it (no key path), or None."""

    def user(self, value: str) -> str | None:
        """A user in a grant's ``users`` (``"*"`` is never passed)."""

    def usergroup(self, value: str) -> str | None:
        """A user group in a grant's ``usergroups``."""

    def channel_id(self, value: str) -> str | None:
        """A channel in a grant's ``channels``: what commands carry."""

    def channel(self, value: str, example: str) -> str | None:
        """Where the bot posts (``notify_channel``, ``audit_channel``); ``example`` is a valid ID."""

    def approver(self, value: str, roles: Sequence[str]) -> str | None:
        """An approver that names no defined role among ``roles``, so must be a user."""


def _spaced(value: str) -> bool:
    return any(ch.isspace() for ch in value)


class WordIdentities:
    """The kernel's own rules: any identity is one word (no whitespace)."""

    def user(self, value: str) -> str | None:
        return f"`{value}` is not a user ID: IDs have no spaces" if _spaced(value) else None

    def usergroup(self, value: str) -> str | None:
        return f"`{value}` is not a user-group ID: IDs have no spaces" if _spaced(value) else None

    def channel_id(self, value: str) -> str | None:
        return f"`{value}` is not a channel ID: IDs have no spaces" if _spaced(value) else None

    def channel(self, value: str, example: str) -> str | None:
        return f"`{value}` is not a channel: give its ID, like {example}" if _spaced(value) else None

    def approver(self, value: str, roles: Sequence[str]) -> str | None:
        if not _spaced(value):
            return None
        return (
            f"no role `{value}` is defined and it is not a user ID (IDs have no spaces); "
            f"{did_you_mean(value, roles)}give role names ({join_names(roles)}) or user IDs"
        )


WORDS = WordIdentities()
