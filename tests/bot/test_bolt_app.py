"""How the Bolt app is built: our client and authorize, and nothing Bolt picks up from the environment."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest

from bot.slack.app import build_app
from workers.kernel.secrets import Secret

API_URL = "http://127.0.0.1:9/api/"


def test_bolt_gets_our_client_and_no_token_to_warn_about(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    service = SimpleNamespace(jobs=None)
    with caplog.at_level(logging.DEBUG):
        app = build_app(service, signing_secret=Secret("s" * 32),  # type: ignore[arg-type]
                        bot_token=Secret("xoxb-configured"), api_url=API_URL)
    assert [r.getMessage() for r in caplog.records if "will be unused" in r.getMessage()] == []
    assert os.environ["SLACK_BOT_TOKEN"] == "xoxb-from-the-environment"  # put back once the app is built
    assert app.client.base_url == API_URL and app.client.token is None
    assert {type(h).__name__ for h in app.client.retry_handlers} == {
        "ConnectionErrorRetryHandler", "RateLimitErrorRetryHandler", "ServerErrorRetryHandler"}


def test_without_the_variable_nothing_is_added_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    build_app(SimpleNamespace(jobs=None), signing_secret=Secret("s" * 32),  # type: ignore[arg-type]
              bot_token=Secret("xoxb-configured"), api_url=API_URL)
    assert "SLACK_BOT_TOKEN" not in os.environ
