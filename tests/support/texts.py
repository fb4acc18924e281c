"""Texts as Slack shows them: the core's structured text rendered to mrkdwn, for assertions."""

from __future__ import annotations

from bot.core.errors import message_of
from bot.core.text import Text
from bot.slack.mrkdwn import mrkdwn
from workers.kernel.errors import RegopsError


def slack(value: Text | str | RegopsError) -> str:
    """A Text or an error's message as the Slack adapter renders it; a str as it is."""
    if isinstance(value, RegopsError):
        return mrkdwn(message_of(value))
    return mrkdwn(value) if isinstance(value, Text) else value
