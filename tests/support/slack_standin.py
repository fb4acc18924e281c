"""A local stand-in for Slack: answers the Web API methods regops calls, in Slack's JSON shapes,
records every call, and serves response_url endpoints. Also signs requests as Slack does.
With ``app_token`` and ``socket`` set, ``apps.connections.open`` hands out Socket Mode URLs."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from tests.support.socket_standin import SocketModeStandIn


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    authorization: str
    raw: str
    at: float = field(default_factory=time.time)
    status: int = 200
    ok: bool = True
    """Whether the stand-in answered ``ok: true`` (a scripted failure or a 429 did not)."""


@dataclass
class _Failure:
    method: str
    error: str
    channel: str | None
    times: int | None
    status: int = 200
    retry_after: int | None = None


def wait_on(condition: threading.Condition, predicate: Callable[[], Any], timeout: float,
            failure: Callable[[], str]) -> Any:
    """Wait, under ``condition``, until ``predicate`` gives something true; fail with ``failure()``."""
    deadline = time.monotonic() + timeout
    with condition:
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(failure())
            condition.wait(min(remaining, 0.2))


class SlackStandIn:
    """``with SlackStandIn(token) as slack:`` — ``slack.api_url`` is the SLACK_API_URL to use."""

    def __init__(self, bot_token: str, *, app_token: str | None = None,
                 socket: SocketModeStandIn | None = None) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.socket = socket
        self.calls: list[Call] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []  # (response_url path, body)
        self.raw_requests: list[str] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Condition()
        self._ts = itertools.count(1)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) -> latest text/blocks
        self.usergroups: dict[str, list[str]] = {}  # user-group ID -> member user IDs
        self.outage: Callable[[str], tuple[str, float] | None] | None = None
        """method → None (answer normally), ("429", retry_after), ("5xx", status) or ("hang", seconds)."""
        self.failed_calls: list[Call] = []
        self.channel_interval: float | None = None
        """When set, chat.postMessage answers 429 (Retry-After 1) to a channel posted to less than this many
        seconds before, as Slack limits each channel to about one message a second."""
        self._last_post: dict[str, float] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---- lifecycle ----
    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base_url}/response/{name}"

    # ---- scripting failures ----
    def fail(self, method: str, error: str, *, channel: str | None = None, times: int | None = None,
             status: int = 200, retry_after: int | None = None) -> None:
        with self._lock:
            self._failures.append(_Failure(method, error, channel, times, status, retry_after))

    # ---- inspection ----
    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
        return wait_on(self._lock, predicate, timeout, lambda: (
            f"Slack stand-in: timed out waiting for {what}; calls: "
            f"{[(c.method, c.params.get('text')) for c in self.calls]}"))

    def everything_sent(self) -> str:
        """Every byte regops sent to Slack, for secret scans."""
        with self._lock:
            return "\n".join(self.raw_requests)

    # ---- the server ----
    def _answer(self, method: str, params: dict[str, Any], authorization: str) -> tuple[int, dict, dict]:
        if method == "apps.connections.open":
            # Only the app-level token opens connections; the bot token is refused, as Slack does.
            if self.app_token is None or self.socket is None or authorization != f"Bearer {self.app_token}":
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            return 200, {"ok": True, "url": self.socket.issue_url()}, {}
        if authorization != f"Bearer {self.bot_token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        for failure in self._failures:
            if failure.method != method or failure.times == 0:
                continue
            if failure.channel is not None and params.get("channel") != failure.channel:
                continue
            if failure.times is not None:
                failure.times -= 1
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return failure.status, {"ok": False, "error": failure.error}, headers
        if method == "auth.test":
            return 200, {"ok": True, "url": "https://regops-test.slack.com/", "team": "regops-test",
                         "user": "regops", "team_id": "T0TEAM", "user_id": "U0BOT", "bot_id": "B0BOT"}, {}
        if method == "chat.postMessage":
            channel = str(params.get("channel", ""))
            now = time.time()
            if self.channel_interval is not None:
                if now - self._last_post.get(channel, float("-inf")) < self.channel_interval:
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
                self._last_post[channel] = now
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            message = {"type": "message", "text": params.get("text"), "blocks": params.get("blocks"),
                       "ts": ts, "bot_id": "B0BOT"}
            self.messages[(channel, ts)] = message
            return 200, {"ok": True, "channel": channel, "ts": ts, "message": message}, {}
        if method == "chat.update":
            key = (str(params.get("channel", "")), str(params.get("ts", "")))
            if key not in self.messages:
                return 200, {"ok": False, "error": "message_not_found"}, {}
            self.messages[key] = {**self.messages[key], "text": params.get("text"), "blocks": params.get("blocks")}
            return 200, {"ok": True, "channel": key[0], "ts": key[1], "text": params.get("text")}, {}
        if method == "usergroups.users.list":
            group = str(params.get("usergroup", ""))
            if group not in self.usergroups:
                return 200, {"ok": False, "error": "no_such_subteam"}, {}
            return 200, {"ok": True, "users": list(self.usergroups[group])}, {}
        if method == "chat.postEphemeral":
            return 200, {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                path = urllib.parse.urlparse(self.path).path
                with standin._lock:
                    standin.raw_requests.append(f"{self.path}\n{self.headers}\n{raw}")
                if path.startswith("/response/"):
                    with standin._lock:
                        standin.responses.append((path, json.loads(raw or "{}")))
                        standin._lock.notify_all()
                    self._send(200, b"ok", "text/plain")
                    return
                if not path.startswith("/api/"):
                    self._send(404, b"not found", "text/plain")
                    return
                method = path[len("/api/"):]
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(raw or "{}")
                else:
                    params = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
                    for key in ("blocks",):
                        if isinstance(params.get(key), str):
                            params[key] = json.loads(params[key])
                outage = standin.outage(method) if standin.outage else None
                if outage is not None:
                    # Slack having a bad time: recorded, but answered with the outage's failure.
                    kind, value = outage
                    with standin._lock:
                        standin.failed_calls.append(Call(method, params, self.headers.get("Authorization", ""), raw))
                    if kind == "hang":
                        time.sleep(value)
                        self._send(503, b"", "text/plain")
                    elif kind == "429":
                        self._send(429, json.dumps({"ok": False, "error": "ratelimited"}).encode(),
                                   "application/json", {"Retry-After": str(int(value))})
                    else:
                        self._send(int(value), b"<html>upstream error</html>", "text/html")
                    return
                with standin._lock:
                    status, body, headers = standin._answer(method, params,
                                                            self.headers.get("Authorization", ""))
                    standin.calls.append(Call(method, params, self.headers.get("Authorization", ""), raw,
                                              status=status, ok=bool(body.get("ok"))))
                    standin._lock.notify_all()
                self._send(status, json.dumps(body).encode(), "application/json", headers)

            def _send(self, status: int, payload: bytes, content_type: str,
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def sign(signing_secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends: v0 HMAC-SHA256 over ``v0:timestamp:body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def slash_command_body(text: str, *, user_id: str, channel_id: str = "C0OPS", response_url: str = "",
                       command: str = "/registry", trigger_id: str | None = None) -> str:
    """A slash command's form body with the fields Slack documents."""
    return urllib.parse.urlencode({
        "token": "legacy-ignored", "team_id": "T0TEAM", "team_domain": "regops-test",
        "channel_id": channel_id, "channel_name": "ops", "user_id": user_id, "user_name": user_id.lower(),
        "command": command, "text": text, "api_app_id": "A0REGOPS", "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": trigger_id or f"trig.{time.time_ns()}",
    })


def block_actions_body(*, user_id: str, channel_id: str, action_id: str, value: str, message_ts: str,
                       message: dict[str, Any] | None = None) -> str:
    """A button click's form body: a ``payload`` field holding the block_actions JSON Slack sends."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0TEAM"},
        "api_app_id": "A0REGOPS",
        "team": {"id": "T0TEAM", "domain": "regops-test"},
        "channel": {"id": channel_id, "name": "ops"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                      "is_ephemeral": False},
        "message": {"type": "message", "ts": message_ts, **(message or {})},
        "response_url": f"https://hooks.slack.invalid/actions/{time.time_ns()}",
        "trigger_id": f"trig.{time.time_ns()}",
        "actions": [{"type": "button", "action_id": action_id, "block_id": f"approval:{value}", "value": value,
                     "text": {"type": "plain_text", "text": action_id}, "action_ts": str(time.time())}],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})
