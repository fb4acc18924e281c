"""The bot's WSGI application: Slack requests to Bolt, plus the health and metrics endpoints."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import redis
from prometheus_client.registry import CollectorRegistry
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.http.metrics import CONTENT_TYPE, exposition

SLACK_PATH = "/slack/events"


class WebApp:
    """Routes ``POST /slack/events`` to Bolt and answers ``GET /healthz`` and ``GET /metrics`` itself."""

    def __init__(self, bolt_app: App, health_problem: Callable[[], str | None],
                 metrics: CollectorRegistry | None = None) -> None:
        self._slack = SlackRequestHandler(bolt_app, path=SLACK_PATH)
        self._health_problem = health_problem
        self._metrics = metrics

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return _respond(start_response, "405 Method Not Allowed", {"error": "use GET"})
            problem = self._health_problem()
            if problem is None:
                return _respond(start_response, "200 OK", {"status": "ok"})
            return _respond(start_response, "503 Service Unavailable", {"status": problem})
        if path == "/metrics" and self._metrics is not None:
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return _respond(start_response, "405 Method Not Allowed", {"error": "use GET"})
            try:
                payload = exposition(self._metrics)
            except redis.RedisError:
                return _respond(start_response, "503 Service Unavailable", {"status": "redis unreachable"})
            start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                      ("Content-Length", str(len(payload)))])
            return [payload]
        return self._slack(environ, start_response)


def _respond(start_response: Callable, status: str, body: dict) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
