"""The bot's WSGI application: Slack requests to Bolt (past the edge guard), the registries' notifications,
and the health and metrics endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

import redis
from prometheus_client.registry import CollectorRegistry
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.http.guard import MAX_BODY_BYTES, Commands, SlackGuard, respond
from bot.http.metrics import CONTENT_TYPE, exposition
from bot.http.registry_events import REGISTRY_EVENTS_PATH
from workers.kernel.secrets import Secret

SLACK_PATH = "/slack/events"


class WebApp:
    """Routes ``POST /slack/events`` to Bolt and ``/registry/events`` to ``registry_events``, and answers
    ``GET /healthz`` and ``GET /metrics`` itself.

    Every Slack request passes :class:`~bot.http.guard.SlackGuard` first (bounded, signed, well
    formed); ``/metrics`` wants ``Authorization: Bearer METRICS_TOKEN`` when a token is given;
    ``registry_events`` (:class:`~bot.http.registry_events.RegistryEventsEndpoint`) checks its own
    requests.  The same app serves HTTP mode and Socket Mode (where only Slack's side differs).
    """

    def __init__(self, bolt_app: App, health_problem: Callable[[], str | None],
                 metrics: CollectorRegistry | None = None, *, signing_secret: Secret,
                 metrics_token: Secret | None = None, max_body: int = MAX_BODY_BYTES,
                 registry_events: Callable[[dict, Callable], Iterable[bytes]] | None = None,
                 commands: Commands | None = None) -> None:
        self._slack = SlackGuard(SlackRequestHandler(bolt_app, path=SLACK_PATH), signing_secret,
                                 path=SLACK_PATH, max_body=max_body, commands=commands)
        self._health_problem = health_problem
        self._metrics = metrics
        self._metrics_token = metrics_token.reveal().encode() if metrics_token else None
        self._registry_events = registry_events

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == REGISTRY_EVENTS_PATH and self._registry_events is not None:
            return self._registry_events(environ, start_response)
        if path == "/healthz":
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return respond(start_response, "405 Method Not Allowed", {"error": "use GET"})
            problem = self._health_problem()
            if problem is None:
                return respond(start_response, "200 OK", {"status": "ok"})
            return respond(start_response, "503 Service Unavailable", {"status": problem})
        if path == "/metrics" and self._metrics is not None:
            if not self._authorized(environ.get("HTTP_AUTHORIZATION", "")):
                # Before anything else: nothing is read from Redis for a request without the token.
                return respond(start_response, "401 Unauthorized", {"error": "a bearer token is required"},
                               [("WWW-Authenticate", 'Bearer realm="regops metrics"')])
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return respond(start_response, "405 Method Not Allowed", {"error": "use GET"})
            try:
                payload = exposition(self._metrics)
            except redis.RedisError:
                return respond(start_response, "503 Service Unavailable", {"status": "redis unreachable"})
            start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                      ("Content-Length", str(len(payload)))])
            return [payload]
        return self._slack(environ, start_response)

    def _authorized(self, header: str) -> bool:
        if self._metrics_token is None:
            return True
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        # WSGI hands header values over as latin-1 text; compared as bytes, in constant time.
        return hmac.compare_digest(credentials.strip().encode("latin-1", "replace"), self._metrics_token)
