"""What Slack's IDs look like, and the bot's way of loading the config with them checked.

The kernel's config loader knows only that grants name users, user groups and channels;
:data:`SLACK_IDENTITIES` tells it Slack's formats, and each mistake is reported at its key
path with what a valid ID looks like and where to find it in Slack.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from workers.kernel.config import Config, load_config
from workers.kernel.config.problems import did_you_mean, join_names

USER_ID = re.compile(r"[UW][A-Z0-9]+")
"""A Slack user ID (``W…`` in Enterprise Grid)."""
USERGROUP_ID = re.compile(r"S[A-Z0-9]+")
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]+")
"""A Slack conversation ID: public (``C…``), private (``G…``) or direct message (``D…``)."""
CHANNEL = re.compile(r"[A-Z0-9]+|#[a-z0-9][a-z0-9_-]*")
"""Where the bot posts: a conversation ID or a ``#name``."""

USER_HINT = (
    'is not a Slack user ID: give IDs like U0ADMIN (in Slack: profile → ⋮ → Copy member ID), or "*" for everyone'
)
GROUP_HINT = (
    "is not a Slack user-group ID: give the group's ID like S0DEVOPS (from Slack's usergroups.list), "
    "not its @handle or name"
)
CHANNEL_HINT = (
    "is not a Slack channel ID: give IDs like C0OPS (in Slack: channel details → About → Channel ID); "
    "commands carry the channel's ID, never its name"
)


class SlackIdentities:
    """The kernel's :class:`~workers.kernel.config.IdentityRules` for Slack workspaces."""

    def user(self, value: str) -> str | None:
        return None if USER_ID.fullmatch(value) else f"`{value}` {USER_HINT}"

    def usergroup(self, value: str) -> str | None:
        return None if USERGROUP_ID.fullmatch(value) else f"`{value}` {GROUP_HINT}"

    def channel_id(self, value: str) -> str | None:
        return None if CHANNEL_ID.fullmatch(value) else f"`{value}` {CHANNEL_HINT}"

    def channel(self, value: str, example: str) -> str | None:
        if CHANNEL.fullmatch(value):
            return None
        return f"`{value}` is not a Slack channel: give its ID, like {example}, or `#name`"

    def approver(self, value: str, roles: Sequence[str]) -> str | None:
        if USER_ID.fullmatch(value):
            return None
        return (
            f"no role `{value}` is defined and it is not a Slack user ID; {did_you_mean(value, roles)}"
            f"give role names ({join_names(roles)}) or user IDs like U0ADMIN"
        )


SLACK_IDENTITIES = SlackIdentities()


def load_bot_config(path: str | os.PathLike[str]) -> Config:
    """The kernel's :func:`~workers.kernel.config.load_config` with Slack's ID formats checked too."""
    return load_config(path, SLACK_IDENTITIES)
