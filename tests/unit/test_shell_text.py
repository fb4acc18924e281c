"""What the console shows of Slack mrkdwn: emoji codes and mention brackets go, times stay whole."""

from __future__ import annotations

import pytest

from bot.console.shell import plain


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":inbox_tray: Queued job `abc`", "Queued job `abc`"),
        ("requested by <@U0DEV1>", "requested by @U0DEV1"),
        ("queued 2026-11-28T18:00:00.331Z", "queued 2026-11-28T18:00:00.331Z"),
        (":no_entry: you may not push `x:latest`", "you may not push `x:latest`"),
    ],
)
def test_plain(text: str, expected: str) -> None:
    assert plain(text) == expected
