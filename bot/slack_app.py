"""Thin Bolt listeners: turn a slash command into a service Request and its Reply into the ack.

With ``process_before_response=True`` the listener's ``ack`` payload *is* the HTTP
response, and Bolt does not poll for it; the listener must therefore stay fast: it
only parses, authorizes and enqueues (Redis), never calls Slack or Docker.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.messages import reply_body
from bot.service import Request, Service
from workers.contracts import Secret

log = logging.getLogger(__name__)


def build_app(service: Service, *, signing_secret: Secret, bot_token: Secret, api_url: str) -> App:
    """The Bolt app: signature checks (Bolt's own), slash commands routed to ``service``.

    Authorization hands Bolt the configured bot token directly: Bolt's single-team mode
    would call ``auth.test`` before the first ack, and a Slack hiccup there would fail
    commands that need nothing from Slack.
    """

    def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=bot_token.reveal())

    app = App(
        signing_secret=signing_secret.reveal(),
        client=WebClient(base_url=api_url),
        authorize=authorize,
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )
    app.command(re.compile(r"^/.+"))(_command_listener(service))
    return app


def _command_listener(service: Service) -> Callable[..., None]:
    def on_command(ack: Ack, command: dict[str, Any]) -> None:
        request = Request(
            user_id=command.get("user_id", ""),
            text=command.get("text", "") or "",
            channel_id=command.get("channel_id"),
            frontend="slack",
            response_url=command.get("response_url"),
        )
        ack(**reply_body(service.handle(request)))

    return on_command
