"""Slash commands answered at the HTTP edge (bot/http/guard.py ``Commands``) get what Bolt would answer.

`regops serve` answers a verified slash command in the guard, without Bolt parsing the body a
second time; Socket Mode and everything that is not a slash command still go through Bolt.  Here
each request is sent to two web apps over the same real service stand-in and Bolt app: one that
hands every request to Bolt, one that answers commands at the edge. Status, headers and body must
be the same, byte for byte, and the service must have been asked the same thing.
"""

from __future__ import annotations

import io
from functools import partial
from typing import Any

import pytest

from bot.core.replies import Reply, ReplyKind, Request
from bot.core.text import t
from bot.http.app import SLACK_PATH, WebApp
from bot.http.guard import Commands
from bot.slack.app import acknowledge_command, build_app, is_slash_command
from tests.support.slack_standin import sign, slash_command_body
from workers.kernel.secrets import Secret

SECRET = "edge-signing-secret-" + "e" * 12


class EchoService:
    """Answers each command with a reply built from what it was asked (so a wrong field shows)."""

    def __init__(self) -> None:
        self.handled: list[Request] = []

    def handle(self, request: Request) -> Reply:
        self.handled.append(request)
        if request.text == "empty":
            return Reply(kind=ReplyKind.ANSWER, text=t(""))
        return Reply(kind=ReplyKind.ANSWER, text=t("{} said {} in {} (trigger {}); paragraph\n\nsecond é ✓",
                                                   request.user_id, request.text, request.channel_id or "-",
                                                   request.idempotency_key or "-"))

    def click(self, click: Any) -> None:
        raise AssertionError("no clicks here")


def _apps(service: EchoService) -> tuple[WebApp, WebApp]:
    bolt = build_app(service, signing_secret=Secret(SECRET), bot_token=Secret("xoxb-edge"),  # type: ignore[arg-type]
                     api_url="http://127.0.0.1:9/api/", verified_at_the_edge=True)
    via_bolt = WebApp(bolt, lambda: None, None, signing_secret=Secret(SECRET))
    at_edge = WebApp(bolt, lambda: None, None, signing_secret=Secret(SECRET),
                     commands=Commands(is_slash_command, partial(acknowledge_command, service)))  # type: ignore[arg-type]
    return via_bolt, at_edge


def _post(app: WebApp, body: str) -> tuple[str, list[tuple[str, str]], bytes]:
    raw = body.encode()
    environ: dict[str, Any] = {"PATH_INFO": SLACK_PATH, "REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1",
                               "QUERY_STRING": "", "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)),
                               "CONTENT_TYPE": "application/x-www-form-urlencoded"}
    for name, value in sign(SECRET, body).items():
        if name.lower() != "content-type":
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], _exc: Any = None) -> None:
        answer["status"], answer["headers"] = status, headers

    out = b"".join(app(environ, start_response))
    return answer["status"], sorted((k.lower(), v) for k, v in answer["headers"]), out


@pytest.mark.parametrize("body", [
    slash_command_body("push centos7-elasticsearch latest", user_id="U0DEV1", trigger_id="1.2.abc",
                       response_url="https://hooks.example/r/1"),
    slash_command_body("push payload-api 1", user_id="U0DEV2"),  # the word Bolt misreads, re-spelled
    slash_command_body("", user_id="U0DEV3"),
    slash_command_body("empty", user_id="U0DEV3"),
    slash_command_body("help <@U0OTHER> & *bold*", user_id="U0DEV4", channel_id="C0OTHER"),
], ids=["push", "payload-word", "no-text", "empty-reply", "markup"])
def test_a_command_answered_at_the_edge_is_answered_as_bolt_answers_it(body: str) -> None:
    service = EchoService()
    via_bolt, at_edge = _apps(service)
    expected = _post(via_bolt, body)
    got = _post(at_edge, body)
    assert got == expected
    assert expected[0] == "200 OK"
    assert len(service.handled) == 2 and service.handled[0] == service.handled[1]


def test_what_is_no_slash_command_still_goes_to_bolt() -> None:
    service = EchoService()
    _via_bolt, at_edge = _apps(service)
    status, _headers, out = _post(at_edge, "ssl_check=1&token=legacy&command=%2Fregistry")
    assert status == "200 OK" and out == b""  # Bolt's SSL check answer, no command handled
    status, _headers, _out = _post(at_edge, slash_command_body("help", user_id="U0DEV1", command="registry"))
    assert status.startswith("404")  # no listener takes a command not starting with "/": Bolt's answer
    assert service.handled == []


@pytest.mark.parametrize("body,taken", [
    ({"command": "/registry", "text": "help"}, True),
    ({"command": "/r"}, True),
    ({"command": "/"}, False),
    ({"command": "registry"}, False),
    ({"command": None}, False),
    ({"command": "/registry", "ssl_check": "1"}, False),
    ({"type": "block_actions"}, False),
])
def test_is_slash_command_follows_the_listener_pattern(body: dict[str, Any], taken: bool) -> None:
    assert is_slash_command(body) is taken
