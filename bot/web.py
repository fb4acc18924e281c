"""The bot's WSGI application: Slack requests to Bolt, plus the health endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

SLACK_PATH = "/slack/events"


class WebApp:
    """Routes ``POST /slack/events`` to Bolt and answers ``GET /healthz`` itself."""

    def __init__(self, bolt_app: App, healthy: Callable[[], bool]) -> None:
        self._slack = SlackRequestHandler(bolt_app, path=SLACK_PATH)
        self._healthy = healthy

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return _respond(start_response, "405 Method Not Allowed", {"error": "use GET"})
            if self._healthy():
                return _respond(start_response, "200 OK", {"status": "ok"})
            return _respond(start_response, "503 Service Unavailable", {"status": "redis unreachable"})
        return self._slack(environ, start_response)


def _respond(start_response: Callable, status: str, body: dict) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
