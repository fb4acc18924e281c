"""``POST /registry/events`` in-process (through WebApp, on real Redis): the order of checks, what is stored, logs."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.core.event_intake import EventIntake
from bot.http.app import WebApp
from bot.http.registry_events import (
    MAX_ENVELOPE_BYTES,
    REGISTRY_EVENTS_PATH,
    RegistryEventsEndpoint,
    SenderTokens,
    read_events_tokens,
)
from bot.slack.app import build_app
from workers.kernel.config import RegistryConfig
from workers.kernel.keys import REGISTRY_EVENTS_LAST_KEY, REGISTRY_EVENTS_STREAM
from workers.kernel.secrets import Secret

RECORDED = Path(__file__).parents[1] / "support" / "registry_envelopes"
EVENTS_TYPE = "application/vnd.docker.distribution.events.v1+json"
MAIN_TOKEN = "main-events-token-" + "m" * 20
PROD_TOKEN = "prod-events-token-" + "p" * 20
NOW = 1_800_000_000.0


def recorded(name: str) -> bytes:
    return json.dumps(json.loads((RECORDED / f"{name}.json").read_text())["body"]).encode()


class Unread(io.BytesIO):
    """A request body that fails the test if anything reads it."""

    def read(self, size: int | None = -1) -> bytes:
        raise AssertionError("the body was read")


def call(app: Any, body: bytes | None = None, *, token: str | None = MAIN_TOKEN, method: str = "POST",
         content_type: str | None = EVENTS_TYPE, length: str | None = "auto", authorization: str | None = None,
         unread: bool = False) -> tuple[int, dict[str, str], dict[str, Any]]:
    data = body if body is not None else recorded("push_api")
    environ: dict[str, Any] = {"PATH_INFO": REGISTRY_EVENTS_PATH, "REQUEST_METHOD": method,
                               "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": "",
                               "wsgi.input": Unread(data) if unread else io.BytesIO(data)}
    if length is not None:
        environ["CONTENT_LENGTH"] = str(len(data)) if length == "auto" else length
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    elif token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], _exc: Any = None) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    out = b"".join(app(environ, start_response))
    assert answer["headers"]["Content-Type"] == "application/json"
    return int(answer["status"].split()[0]), answer["headers"], json.loads(out)


@pytest.fixture
def endpoint(text_redis: redis.Redis) -> RegistryEventsEndpoint:
    tokens = SenderTokens({"main": Secret(MAIN_TOKEN), "prod": Secret(PROD_TOKEN)})
    return RegistryEventsEndpoint(tokens, EventIntake(text_redis), clock=lambda: NOW)


@pytest.fixture
def web(endpoint: RegistryEventsEndpoint) -> WebApp:
    bolt = build_app(object(), signing_secret=Secret("s" * 32), bot_token=Secret("xoxb-t"),  # type: ignore[arg-type]
                     api_url="http://127.0.0.1:9/api/")
    return WebApp(bolt, lambda: None, None, signing_secret=Secret("s" * 32), registry_events=endpoint)


def stream(client: redis.Redis) -> list[dict[str, str]]:
    return [fields for _, fields in client.xrange(REGISTRY_EVENTS_STREAM)]


def test_a_recorded_push_is_stored_and_answered_with_the_counts(web: WebApp, text_redis: redis.Redis,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    status, _, answer = call(web)
    assert (status, answer) == (200, {"taken": 1, "duplicate": 0, "ignored": 0})
    [fields] = stream(text_redis)
    assert (fields["registry"], fields["action"], fields["tag"]) == ("main", "push", "1.0")
    assert text_redis.hget(REGISTRY_EVENTS_LAST_KEY, "main") == repr(NOW)
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.http.registry_events"]
    assert lines == ["registry events from main: 1 taken, 0 duplicate, 0 ignored"]


def test_the_token_names_the_registry_and_a_retry_is_a_duplicate(web: WebApp, text_redis: redis.Redis) -> None:
    assert call(web, token=PROD_TOKEN)[2] == {"taken": 1, "duplicate": 0, "ignored": 0}
    assert call(web, token=PROD_TOKEN)[2] == {"taken": 0, "duplicate": 1, "ignored": 0}
    assert call(web, token=MAIN_TOKEN)[2] == {"taken": 1, "duplicate": 0, "ignored": 0}
    assert [f["registry"] for f in stream(text_redis)] == ["prod", "main"]


def test_ignored_events_are_counted_and_still_note_the_envelope(web: WebApp, text_redis: redis.Redis) -> None:
    for name in ("pull_manifest", "push_blob", "push_digest_only"):
        assert call(web, recorded(name), content_type="application/json; charset=utf-8")[2] == {
            "taken": 0, "duplicate": 0, "ignored": 1}
    assert stream(text_redis) == [] and text_redis.hget(REGISTRY_EVENTS_LAST_KEY, "main") == repr(NOW)


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE"])
def test_another_method_is_405_and_reads_nothing(web: WebApp, text_redis: redis.Redis, method: str) -> None:
    status, headers, answer = call(web, method=method, unread=True)
    assert status == 405 and headers["Allow"] == "POST" and answer == {"error": "use POST"}
    assert text_redis.dbsize() == 0


@pytest.mark.parametrize("authorization", [
    None, "", f"Basic {MAIN_TOKEN}", f"Bearer {MAIN_TOKEN}x", f"Bearer {MAIN_TOKEN[:-1]}", "Bearer",
    f"Bearer {MAIN_TOKEN} {PROD_TOKEN}", "Bearer \u00e9t\u00e9-token-0123456789", f"{MAIN_TOKEN}"])
def test_a_missing_or_wrong_token_is_401_and_nothing_is_read_or_stored(
        web: WebApp, text_redis: redis.Redis, caplog: pytest.LogCaptureFixture, authorization: str | None) -> None:
    caplog.set_level(logging.DEBUG)
    status, headers, answer = call(web, token=None, authorization=authorization, unread=True)
    assert status == 401 and headers["WWW-Authenticate"].startswith('Bearer realm="regops registry events"')
    assert answer == {"error": "a registry's bearer token is required"}
    assert text_redis.dbsize() == 0
    for record in caplog.records:
        assert MAIN_TOKEN[:-1] not in record.getMessage() and PROD_TOKEN not in record.getMessage()


def test_the_bearer_scheme_is_case_insensitive(web: WebApp) -> None:
    assert call(web, token=None, authorization=f"bearer {MAIN_TOKEN}")[0] == 200


@pytest.mark.parametrize("length,status", [(None, 411), ("", 411), ("12x", 400), ("-1", 400),
                                           (str(MAX_ENVELOPE_BYTES + 1), 413), ("9" * 30, 413)])
def test_the_content_length_is_required_and_bounded_before_the_body_is_read(
        web: WebApp, text_redis: redis.Redis, length: str | None, status: int) -> None:
    assert call(web, length=length, unread=True)[0] == status
    assert text_redis.dbsize() == 0


def test_an_envelope_of_the_limit_is_read(web: WebApp) -> None:
    data = recorded("push_api")
    padded = data[:-1] + b" " * (MAX_ENVELOPE_BYTES - len(data)) + b"}"
    assert len(padded) == MAX_ENVELOPE_BYTES and call(web, padded)[0] == 200


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/x-www-form-urlencoded"])
def test_another_content_type_is_415_before_the_body_is_read(web: WebApp, text_redis: redis.Redis,
                                                             content_type: str | None) -> None:
    status, _, answer = call(web, content_type=content_type, unread=True)
    assert status == 415 and "content type" in answer["error"]
    assert text_redis.dbsize() == 0


@pytest.mark.parametrize("body,reason", [
    (b"not json", "the body is not JSON"),
    (b"", "the body is not JSON"),
    (b'{"events": "x"}', "the body has no `events` list"),
    (b'{"events": [{"id": "a", "action": "push"}]}', "events[0].target is missing or not an object"),
])
def test_a_body_that_is_no_envelope_is_400_with_its_reason_and_nothing_is_stored(
        web: WebApp, text_redis: redis.Redis, body: bytes, reason: str) -> None:
    status, _, answer = call(web, body, length="auto" if body else "0")
    assert (status, answer) == (400, {"error": reason})
    assert text_redis.dbsize() == 0


def test_a_half_bad_envelope_stores_none_of_its_events(web: WebApp, text_redis: redis.Redis) -> None:
    good = json.loads(recorded("push_api"))["events"][0]
    bad = dict(good, id="")
    assert call(web, json.dumps({"events": [good, bad]}).encode())[0] == 400
    assert text_redis.dbsize() == 0


def test_redis_down_is_503_so_the_registry_retries(caplog: pytest.LogCaptureFixture) -> None:
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, decode_responses=True)
    endpoint = RegistryEventsEndpoint(SenderTokens({"main": Secret(MAIN_TOKEN)}), EventIntake(gone))
    status, headers, answer = call(endpoint)
    assert status == 503 and headers["Retry-After"] == "5" and answer == {"error": "cannot store events now; retry"}
    assert any("Redis unavailable" in r.getMessage() for r in caplog.records)


def test_without_an_endpoint_the_path_is_not_routed(text_redis: redis.Redis) -> None:
    bolt = build_app(object(), signing_secret=Secret("s" * 32), bot_token=Secret("xoxb-t"),  # type: ignore[arg-type]
                     api_url="http://127.0.0.1:9/api/")
    app = WebApp(bolt, lambda: None, None, signing_secret=Secret("s" * 32))
    environ = {"PATH_INFO": REGISTRY_EVENTS_PATH, "REQUEST_METHOD": "POST", "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}"),
               "HTTP_AUTHORIZATION": f"Bearer {MAIN_TOKEN}"}
    statuses: list[str] = []
    b"".join(app(environ, lambda status, headers, exc=None: statuses.append(status)))
    assert statuses and statuses[0].startswith("404") and text_redis.dbsize() == 0


# ---- tokens at serve start --------------------------------------------------------------------------


def registry(name: str, env: str | None = None, file: str | None = None) -> RegistryConfig:
    return RegistryConfig(name=name, server=f"{name}.example.com", services_hostname="", namespace="ns",
                          username="ci", password_env="P", password_file=None, events_token_env=env,
                          events_token_file=file)


def test_tokens_are_read_from_the_environment_and_files(tmp_path: Path) -> None:
    path = tmp_path / "prod-token"
    path.write_text(f"{PROD_TOKEN}\n")
    tokens, problems = read_events_tokens(
        {"main": registry("main", env="MAIN_EVENTS"), "prod": registry("prod", file=str(path)),
         "quiet": registry("quiet")}, {"MAIN_EVENTS": f" {MAIN_TOKEN} "})
    assert problems == [] and tokens == {"main": Secret(MAIN_TOKEN), "prod": Secret(PROD_TOKEN)}
    assert SenderTokens(tokens).sender(f"Bearer {PROD_TOKEN}") == "prod"
    assert SenderTokens(tokens).sender(f"Bearer {MAIN_TOKEN}") == "main"
    assert SenderTokens({}).sender(f"Bearer {MAIN_TOKEN}") is None


@pytest.mark.parametrize("environ,problem", [
    ({}, "the events token of registry `main` (environment variable MAIN_EVENTS) is empty or not set"),
    ({"MAIN_EVENTS": "  "}, "the events token of registry `main` (environment variable MAIN_EVENTS) is empty"),
    ({"MAIN_EVENTS": "short-secret"}, ("the events token of registry `main` (environment variable MAIN_EVENTS) is "
     "shorter than 16 characters")),
    ({"MAIN_EVENTS": "with a space inside-0123456789"}, ("the events token of registry `main` (environment variable "
     "MAIN_EVENTS) has characters a header cannot carry")),
    ({"MAIN_EVENTS": "caf\u00e9-caf\u00e9-caf\u00e9-caf\u00e9"}, ("the events token of registry `main` (environment "
     "variable MAIN_EVENTS) has characters a header cannot carry")),
    ({"MAIN_EVENTS": PROD_TOKEN}, ("the events token of registry `main` (environment variable MAIN_EVENTS) is the "
     "same as the events token of registry `prod`")),
])
def test_each_token_problem_names_where_never_the_value(tmp_path: Path, environ: dict[str, str],
                                                        problem: str) -> None:
    path = tmp_path / "prod-token"
    path.write_text(PROD_TOKEN)
    _, problems = read_events_tokens({"prod": registry("prod", file=str(path)),
                                      "main": registry("main", env="MAIN_EVENTS")}, environ)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
    for value in environ.values():
        if value.strip():
            assert value not in problems[0]


def test_an_unreadable_token_file_is_a_problem(tmp_path: Path) -> None:
    _, problems = read_events_tokens({"prod": registry("prod", file=str(tmp_path / "absent"))}, {})
    assert problems == [(f"the events token of registry `prod` (file {tmp_path / 'absent'}) cannot be read "
                        "(No such file or directory)")]
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    _, problems = read_events_tokens({"prod": registry("prod", file=str(binary))}, {})
    assert problems == [f"the events token of registry `prod` (file {binary}) cannot be read (UnicodeDecodeError)"]
