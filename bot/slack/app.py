"""Thin Bolt listeners: slash commands and the approve, reject and cancel buttons, all to the service.

With ``process_before_response=True`` the listener's ``ack`` payload *is* the HTTP
response, and Bolt does not poll for it; listeners therefore stay fast: they parse,
authorize and write to Redis, never call Slack or Docker.  Anything to tell a person
later (a refused click) goes through the relay as a notice.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt import Ack, App
from slack_bolt.authorization import AuthorizeResult

from bot.core.replies import Click, ClickAction, Request
from bot.core.service import Service
from bot.slack.blocks import APPROVE_ACTION, CANCEL_ACTION, REJECT_ACTION, reply_body
from bot.slack.client import build_web_client
from workers.kernel.secrets import Secret

COMMAND_NAME = re.compile(r"^/.+")
"""The slash commands the listener takes (every one: Slack sends only the app's own)."""
_BODY_MARKER = re.compile(r"\b(?:body|payload|message)\s*:|Unhandled request \(|for the request \(")
MAX_LIBRARY_LINE = 2000
"""Characters of a Slack library's log message kept; the rest is cut (a message is never a request's size)."""


class WithholdBodies(logging.Filter):
    """Cuts request and envelope bodies out of Bolt's and slack_sdk's log lines, at every level.

    Bolt logs a request whose signature fails with its body in full (INFO), an unhandled request
    and every response with their bodies; slack_sdk's Socket Mode client logs every envelope it
    receives and sends (DEBUG).  A body can hold what a person typed, a password among it: the line
    keeps its words up to the body and says the rest was withheld.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        match = _BODY_MARKER.search(message)
        if match is not None:
            message = message[: match.end()] + " (withheld)"
        elif len(message) > MAX_LIBRARY_LINE:
            message = message[:MAX_LIBRARY_LINE] + "… (cut)"
        record.msg, record.args = message, None
        return True


def withhold_bodies(name: str) -> None:
    """Put :class:`WithholdBodies` on logger ``name`` and on every logger below it made so far.

    Bolt gives each of its classes a logger of its own (``slack_bolt.RequestVerification``…),
    copying the app logger's filters when it makes one; those made earlier get it here.
    """
    for logger_name in [name, *list(logging.Logger.manager.loggerDict)]:
        if logger_name == name or logger_name.startswith(name + "."):
            logger = logging.getLogger(logger_name)
            if not any(isinstance(f, WithholdBodies) for f in logger.filters):
                logger.addFilter(WithholdBodies())


def build_app(service: Service, *, signing_secret: Secret, bot_token: Secret,
              api_url: str, verified_at_the_edge: bool = False) -> App:
    """The Bolt app: signature checks, slash commands and approval clicks.

    ``verified_at_the_edge``: the HTTP edge (bot/http/guard.py) has checked every request's
    signature, and may have re-spelled a body Bolt would misread, so Bolt does not check it again.

    Authorization hands Bolt the configured bot token directly: Bolt's single-team mode
    would call ``auth.test`` before the first ack, and a Slack hiccup there would fail
    commands that need nothing from Slack.
    """

    def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=bot_token.reveal())

    # Given no token, Bolt reads $SLACK_BOT_TOKEN itself, then warns on every start that it will not
    # use it (authorize hands over the token, and the client takes it per request): while the App is
    # built, that variable is out of its sight. The client is ours: SLACK_API_URL, retries, no token.
    hidden = os.environ.pop("SLACK_BOT_TOKEN", None)
    withhold_bodies("slack_bolt")  # before the App: the loggers it makes copy the filter
    try:
        app = App(
            signing_secret=signing_secret.reveal(),
            client=build_web_client(None, api_url),
            authorize=authorize,
            process_before_response=True,
            request_verification_enabled=not verified_at_the_edge,
            logger=logging.getLogger("slack_bolt"),
        )
    finally:
        if hidden is not None:
            os.environ["SLACK_BOT_TOKEN"] = hidden
    withhold_bodies("slack_bolt")
    app.command(COMMAND_NAME)(_command_listener(service))
    app.action(APPROVE_ACTION)(_click_listener(service, ClickAction.APPROVE))
    app.action(REJECT_ACTION)(_click_listener(service, ClickAction.REJECT))
    app.action(CANCEL_ACTION)(_click_listener(service, ClickAction.CANCEL))
    return app


def is_slash_command(body: Mapping[str, Any]) -> bool:
    """Whether Bolt would hand ``body`` to the command listener: a ``command`` its pattern matches, no SSL check.

    (Bolt answers ``ssl_check=1`` itself before any listener, and leaves a body without a
    matching ``command`` to its other listeners.)
    """
    name = body.get("command")
    return isinstance(name, str) and COMMAND_NAME.search(name) is not None and "ssl_check" not in body


def answer_command(service: Service, command: Mapping[str, Any]) -> dict[str, Any]:
    """What the command listener acknowledges a slash command with: the service's reply, as Slack's JSON."""
    request = Request(
        user_id=command.get("user_id", ""),
        text=command.get("text", "") or "",
        channel_id=command.get("channel_id"),
        frontend="slack",
        response_url=command.get("response_url"),
        # Slack's retries and a replayed request carry the same trigger_id: one job for all of them.
        idempotency_key=command.get("trigger_id") or None,
        sent_through="Slack",
    )
    return reply_body(service.handle(request))


def acknowledge_command(service: Service, command: Mapping[str, Any]) -> dict[str, Any]:
    """The HTTP response body Bolt's ``ack`` would make of :func:`answer_command` (no empty ``blocks``).

    For the HTTP edge, which answers a slash command it has already verified and parsed without
    handing it to Bolt to parse again (bot/http/guard.py); Socket Mode goes through Bolt.
    """
    answer = answer_command(service, command)
    body = {"text": answer["text"], "response_type": answer["response_type"]}
    if answer["blocks"]:
        body["blocks"] = answer["blocks"]
    return body


def _command_listener(service: Service) -> Callable[..., None]:
    def on_command(ack: Ack, command: dict[str, Any]) -> None:
        ack(**answer_command(service, command))

    return on_command


def _click(body: dict[str, Any], action: dict[str, Any], kind: ClickAction) -> Click:
    """Who clicked, in which channel, on which job's button.

    Authorize on who clicked, never on whom the message was addressed to.
    """
    user = (body.get("user") or {}).get("id", "")
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
    return Click(action=kind, job_id=str(action.get("value", "")), user_id=user, channel_id=channel or None)


def _click_listener(service: Service, kind: ClickAction) -> Callable[..., None]:
    def on_click(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        service.click(_click(body, action, kind))

    return on_click
