"""The HTTP edge (bot/http/guard.py) in front of the real Bolt app: bounded, signed, well formed, or refused.

Requests go through :class:`~bot.http.app.WebApp` in-process, with the Bolt app ``build_app``
makes over a stand-in service; every malformed request gets a 4xx, and nothing logs a body or a
traceback, at DEBUG.
"""

from __future__ import annotations

import io
import json
import logging
import time
import urllib.parse
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from bot.core.replies import Reply, ReplyKind
from bot.core.text import t
from bot.http.app import SLACK_PATH, WebApp
from bot.http.guard import MAX_BODY_BYTES, Commands, parse_like_bolt, read_body, spell_out_payload_word
from bot.slack.app import WithholdBodies, acknowledge_command, build_app, is_slash_command
from bot.slack.payloads import check_payload
from tests.support.slack_standin import block_actions_body, sign, slash_command_body
from workers.kernel.secrets import Secret

SECRET = "guard-signing-secret-" + "x" * 12
PASSWORD = "hunter2-" + "p" * 10


class StandInService:
    """Answers every command and records it; the guard's tests care only that Bolt got the request."""

    def __init__(self) -> None:
        self.handled: list[Any] = []
        self.clicks: list[Any] = []

    def handle(self, request: Any) -> Reply:
        self.handled.append(request)
        return Reply(kind=ReplyKind.ANSWER, text=t("ok"))

    def click(self, click: Any) -> None:
        self.clicks.append(click)


@pytest.fixture
def service() -> StandInService:
    return StandInService()


@pytest.fixture(params=["bolt", "edge"])
def web(service: StandInService, request: pytest.FixtureRequest) -> WebApp:
    """The web app as tests build it (every request to Bolt) and as serve does (commands answered at the edge)."""
    bolt = build_app(service, signing_secret=Secret(SECRET), bot_token=Secret("xoxb-guard"),  # type: ignore[arg-type]
                     api_url="http://127.0.0.1:9/api/")
    commands = Commands(is_slash_command, partial(acknowledge_command, service)) if request.param == "edge" else None
    return WebApp(bolt, lambda: None, None, signing_secret=Secret(SECRET), commands=commands)  # type: ignore[arg-type]


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def call(app: WebApp, body: bytes, headers: dict[str, str], *, path: str = SLACK_PATH,
         chunked: bool = False) -> tuple[int, bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1",
                               "QUERY_STRING": "", "wsgi.input": io.BytesIO(body)}
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    answer: dict[str, str] = {}

    def start_response(status: str, _headers: list[tuple[str, str]], _exc: Any = None) -> None:
        answer["status"] = status

    out = b"".join(app(environ, start_response))
    return int(answer["status"].split()[0]), out


def signed(app: WebApp, body: str, *, content_type: str | None = None,
           timestamp: int | None = None) -> tuple[int, bytes]:
    headers = sign(SECRET, body, timestamp)
    if content_type:
        headers["Content-Type"] = content_type
    return call(app, body.encode(), headers)


def assert_clean(log: pytest.LogCaptureFixture, *secrets: str) -> None:
    for record in log.records:
        assert record.levelno < logging.ERROR, record.getMessage()
        assert not record.exc_info and not record.exc_text, record.getMessage()
        for secret in secrets:
            assert secret not in record.getMessage(), record.getMessage()


# ---- what passes ----------------------------------------------------------------------------------


def test_a_signed_command_and_click_reach_the_listeners(web: WebApp, service: StandInService,
                                                        debug_log: pytest.LogCaptureFixture) -> None:
    status, out = signed(web, slash_command_body("help", user_id="U0DEV1"))
    assert status == 200 and json.loads(out)["response_type"] == "ephemeral"
    assert [r.text for r in service.handled] == ["help"]
    body = block_actions_body(user_id="U0DEV1", channel_id="C0OPS", action_id="regops_approve",
                              value="abc123abc123", message_ts="1.2")
    assert signed(web, body)[0] == 200
    assert [c.job_id for c in service.clicks] == ["abc123abc123"]
    assert_clean(debug_log)


def test_other_paths_and_methods_pass_through_unread(web: WebApp) -> None:
    assert call(web, b"x" * (MAX_BODY_BYTES + 1), {}, path="/nowhere")[0] == 404
    assert call(web, b"", {}, path="/healthz")[0] == 405


# ---- size ------------------------------------------------------------------------------------------


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        part = super().read(size)
        self.taken += len(part)
        return part


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    stream = CountingStream(b"x" * (MAX_BODY_BYTES + 1))
    with pytest.raises(Exception) as refused:
        read_body({"CONTENT_LENGTH": str(MAX_BODY_BYTES + 1), "wsgi.input": stream}, MAX_BODY_BYTES)
    assert refused.value.status.startswith("413")  # type: ignore[attr-defined]
    assert stream.taken == 0


def test_a_chunked_body_is_cut_one_byte_past_the_limit() -> None:
    stream = CountingStream(b"x" * (20 * MAX_BODY_BYTES))
    with pytest.raises(Exception) as refused:
        read_body({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream}, MAX_BODY_BYTES)
    assert refused.value.status.startswith("413")  # type: ignore[attr-defined]
    assert stream.taken == MAX_BODY_BYTES + 1
    exact = CountingStream(b"y" * MAX_BODY_BYTES)
    assert read_body({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": exact}, MAX_BODY_BYTES) == exact.getvalue()


@pytest.mark.parametrize("length", ["-1", "1e3", "12 ", "١٢"])
def test_a_malformed_content_length_is_400(length: str) -> None:
    with pytest.raises(Exception) as refused:
        read_body({"CONTENT_LENGTH": length, "wsgi.input": io.BytesIO(b"")}, MAX_BODY_BYTES)
    assert refused.value.status.startswith("400")  # type: ignore[attr-defined]


def test_oversized_and_chunked_requests_answer_413_and_log_no_body(web: WebApp,
                                                                   debug_log: pytest.LogCaptureFixture) -> None:
    big = ("text=" + PASSWORD * (MAX_BODY_BYTES // len(PASSWORD) + 1)).encode()
    assert call(web, big, sign(SECRET, big.decode()))[0] == 413
    assert call(web, big, sign(SECRET, big.decode()), chunked=True)[0] == 413
    small = slash_command_body("help", user_id="U0DEV1")
    assert call(web, small.encode(), sign(SECRET, small), chunked=True)[0] == 200
    assert_clean(debug_log, PASSWORD)


# ---- signature -------------------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", ["", "abc", "1.5", f"{int(time.time())}.0", " 1", "+1", "１２３", "1_000",
                                       "9" * 40])
def test_a_malformed_timestamp_is_401(web: WebApp, timestamp: str, debug_log: pytest.LogCaptureFixture) -> None:
    body = slash_command_body(f"login -p {PASSWORD}", user_id="U0DEV1")
    headers = {**sign(SECRET, body), "X-Slack-Request-Timestamp": timestamp}
    assert call(web, body.encode(), headers)[0] == 401
    assert_clean(debug_log, PASSWORD)


@pytest.mark.parametrize("signature", ["", "v0=", "v1=" + "0" * 64, "v0=" + "é" * 64, "v0=" + "0" * 64])
def test_a_malformed_or_wrong_signature_is_401(web: WebApp, signature: str,
                                               debug_log: pytest.LogCaptureFixture) -> None:
    body = slash_command_body(f"login -p {PASSWORD}", user_id="U0DEV1")
    headers = {**sign(SECRET, body), "X-Slack-Signature": signature}
    assert call(web, body.encode(), headers)[0] == 401
    assert_clean(debug_log, PASSWORD)


def test_a_stale_signed_command_is_401_and_its_password_is_logged_nowhere(
        web: WebApp, service: StandInService, debug_log: pytest.LogCaptureFixture) -> None:
    body = slash_command_body(f"login -p {PASSWORD}", user_id="U0DEV1")
    assert signed(web, body, timestamp=int(time.time()) - 301)[0] == 401
    assert service.handled == []
    assert_clean(debug_log, PASSWORD)


def test_an_unsigned_request_never_reaches_bolt(web: WebApp, debug_log: pytest.LogCaptureFixture) -> None:
    body = slash_command_body(f"login -p {PASSWORD}", user_id="U0DEV1")
    assert call(web, body.encode(), {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
    assert not [r for r in debug_log.records if r.name.startswith("slack_bolt")]


# ---- bodies Slack does not send --------------------------------------------------------------------

MALFORMED = {
    "json content type, not JSON": ("{not json", "application/json"),
    "json content type, empty object text": ("[]", "application/json"),
    "json array": ("[1,2]", "application/json"),
    "form body that starts with a brace": ("{payload=1", None),
    "payload not JSON": ("payload=notjson", None),
    "payload a list": ("payload=" + urllib.parse.quote("[1,2]"), None),
    "payload a string": ("payload=" + urllib.parse.quote('"x"'), None),
    "payload nested too deep": ("payload=" + "[" * 100_00 + "]" * 100_00, None),
    "block_actions without actions": ("payload=" + urllib.parse.quote(json.dumps({"type": "block_actions"})), None),
    "block_actions with empty actions": (
        "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions", "actions": []})), None),
    "block_actions action not an object": (
        "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions", "actions": [1]})), None),
    "block_actions action without action_id": (
        "payload=" + urllib.parse.quote(json.dumps({"type": "block_actions", "actions": [{}]})), None),
    "form authorizations": ("command=%2Fregistry&text=help&authorizations=x", None),
    "form response_urls": ("command=%2Fregistry&text=help&response_urls=x", None),
    "json user a number": (json.dumps({"command": "/registry", "text": "help", "user": 5}), "application/json"),
    "json text a number": (json.dumps({"command": "/registry", "text": 5}), "application/json"),
    "json command a list": (json.dumps({"command": ["/registry"]}), "application/json"),
    "json event null": (json.dumps({"type": "event_callback", "event": None}), "application/json"),
    "json view a string": (json.dumps({"type": "view_submission", "view": "callback_id"}), "application/json"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_signed_malformed_body_is_400_without_a_traceback(web: WebApp, service: StandInService, name: str,
                                                            debug_log: pytest.LogCaptureFixture) -> None:
    body, content_type = MALFORMED[name]
    status, out = signed(web, body, content_type=content_type)
    assert status == 400, (status, out)
    assert "error" in json.loads(out)
    assert service.handled == [] and service.clicks == []
    assert_clean(debug_log)


def test_a_body_that_is_not_utf8_is_400(web: WebApp, debug_log: pytest.LogCaptureFixture) -> None:
    raw = b"command=%2Fregistry&text=\xff\xfe"
    headers = sign(SECRET, "ignored")
    assert call(web, raw, headers)[0] == 400
    assert_clean(debug_log)


def _mutations(value: Any, path: tuple[Any, ...] = (), depth: int = 0) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, replacement) that swaps one field, at most three deep, for a value of another type."""
    replacements: list[Any] = [None, 5, "x", [], {}, [1], [{}], True]
    if depth > 3:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        for replacement in replacements:
            if type(replacement) is not type(child) or replacement != child:
                yield (*path, key), replacement
        yield from _mutations(child, (*path, key), depth + 1)


def _replaced(value: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = replacement
    return copy


def test_no_one_field_swap_of_a_real_click_or_command_makes_a_5xx_or_an_error_line(
        web: WebApp, debug_log: pytest.LogCaptureFixture) -> None:
    click = json.loads(urllib.parse.parse_qs(block_actions_body(
        user_id="U0DEV1", channel_id="C0OPS", action_id="regops_approve", value="abc123abc123",
        message_ts="1.2"))["payload"][0])
    command = dict(urllib.parse.parse_qsl(slash_command_body("help", user_id="U0DEV1")))
    statuses: dict[int, int] = {}
    cases = 0
    for path, replacement in _mutations(click):
        body = "payload=" + urllib.parse.quote(json.dumps(_replaced(click, path, replacement)))
        status, _ = signed(web, body)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (path, replacement)
        cases += 1
    for path, replacement in _mutations(command):
        status, _ = signed(web, json.dumps(_replaced(command, path, replacement)), content_type="application/json")
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (path, replacement)
        cases += 1
    assert cases > 200 and statuses.get(400, 0) > 0 and statuses.get(200, 0) > 0, statuses
    assert_clean(debug_log)


# ---- the payload checks on their own ---------------------------------------------------------------


def test_parsing_follows_bolt() -> None:
    assert parse_like_bolt("", None) == {}
    assert parse_like_bolt("a=1&b=", None) == {"a": "1", "b": ""}
    assert parse_like_bolt("text=my+payload+api", None) == {}  # Bolt's rule: "payload" anywhere, no field
    # ... which the edge works around, keeping the form the same for every reader.
    spelled = spell_out_payload_word("text=my+payload+api&user_id=U1", None)
    assert "payload" not in spelled and parse_like_bolt(spelled, None) == {"text": "my payload api", "user_id": "U1"}
    assert spell_out_payload_word('payload={"a":1}', None) == 'payload={"a":1}'
    assert spell_out_payload_word('{"payload": 1}', "application/json") == '{"payload": 1}'
    assert parse_like_bolt('{"a": 1}', "application/x-www-form-urlencoded") == {"a": 1}
    check_payload({"type": "block_actions", "actions": [{"action_id": "a"}], "user": {"id": "U1"},
                   "authorizations": None, "enterprise": None, "channel": {"id": "C1"}})


# ---- Bolt's own log lines --------------------------------------------------------------------------


def test_bolts_signature_failure_line_keeps_no_body(debug_log: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("slack_bolt.TestWithhold")
    logger.addFilter(WithholdBodies())
    logger.info("Invalid request signature detected (signature: v0=1, timestamp: 1, body: text=login+-p+%s)",
                PASSWORD)
    logger.debug("on_message invoked: (message: {\"text\": \"%s\"})", PASSWORD)
    logger.debug("x" * 10_000)
    messages = [r.getMessage() for r in debug_log.records if r.name == "slack_bolt.TestWithhold"]
    assert messages[0].endswith("body: (withheld)") and messages[1].endswith("message: (withheld)")
    assert len(messages[2]) < 2100
    assert_clean(debug_log, PASSWORD)


def test_bolt_itself_logs_no_body_when_it_refuses_a_signature(service: StandInService,
                                                              debug_log: pytest.LogCaptureFixture) -> None:
    """Behind the edge Bolt still verifies; were it ever to refuse, its line would carry no body."""
    bolt = build_app(service, signing_secret=Secret(SECRET), bot_token=Secret("xoxb-guard"),  # type: ignore[arg-type]
                     api_url="http://127.0.0.1:9/api/")
    from slack_bolt.request import BoltRequest

    body = slash_command_body(f"login -p {PASSWORD}", user_id="U0DEV1")
    response = bolt.dispatch(BoltRequest(body=body, headers=sign("another-secret", body)))
    assert response.status == 401
    assert any("Invalid request signature" in r.getMessage() for r in debug_log.records)
    assert_clean(debug_log, PASSWORD)
