"""`regops serve`: the bot's composition root under gunicorn (threads per worker process).

gunicorn manages the processes; each runs :class:`bot.http.worker.BufferingWorker`, which reads every
request whole (total header and body deadlines) on an event loop before a thread runs the app, so slow
clients hold no thread. Each gunicorn worker process builds its own clients after the fork (nothing connects
before), serves Slack's HTTP requests (or, with ``SLACK_APP_TOKEN``, opens its own Socket
Mode connection; Slack hands each envelope to one of an app's connections), and runs one
relay thread; relays of all workers and of all ``serve`` processes share the work through
a Redis consumer group.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger
from slack_sdk.errors import SlackApiError

from bot.connections import redis_client
from bot.core.assembly import build_core
from bot.core.event_intake import EventIntake
from bot.core.metrics import Metrics
from bot.core.routing import Router, event_registries
from bot.core.watchdog import Watchdog
from bot.http.app import WebApp
from bot.http.guard import Commands
from bot.http.metrics import metrics_registry
from bot.http.registry_events import RegistryEventsEndpoint, SenderTokens
from bot.settings import Settings
from bot.slack.announcer import Announcer
from bot.slack.app import acknowledge_command, build_app, is_slash_command
from bot.slack.audit_relay import AuditRelay
from bot.slack.client import build_web_client, post_response_url
from bot.slack.registry_consumer import RegistryEventConsumer
from bot.slack.relay import Relay
from bot.slack.socket_mode import SocketModeConnection
from bot.slack.usergroups import UserGroupDirectory
from workers.kernel.config import Config
from workers.kernel.secrets import Secret

log = logging.getLogger(__name__)

CLAIM_IDLE_MS = 10_000
"""An event a relay has not acknowledged for this long is retried by any relay: after a Slack
outage or a crashed ``serve``, the channel is up to date about 15 s after Slack is back."""


def bind_address(host: str, port: int) -> str:
    """gunicorn's ``bind`` for an address and port; an IPv6 address (``::``, ``::1``) goes in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


@dataclass(frozen=True)
class ServeOptions:
    host: str = "0.0.0.0"
    """The address to listen on: all IPv4 interfaces by default (a container's port mapping needs that);
    ``127.0.0.1`` behind a reverse proxy on the same machine, ``::`` for IPv6."""
    port: int = 3000
    workers: int = 2
    threads: int = 8
    log_level: str = "info"
    access_log: bool = False


class BotProcess:
    """Everything one serve worker process owns: clients, service, web app, relay threads."""

    def __init__(self, settings: Settings, config: Config, registry_tokens: Mapping[str, Secret] | None = None) -> None:
        """``registry_tokens``: each events-enabled registry's token (read at start by ``regops serve``)."""
        assert settings.slack_bot_token and (settings.slack_signing_secret or settings.slack_app_token)
        self.redis = redis_client(settings)
        self._health_redis = redis_client(settings, timeout=1.0)
        self.client = build_web_client(settings.slack_bot_token, settings.slack_api_url)
        self.directory = UserGroupDirectory(self.client, config.access.usergroups())
        self.metrics = Metrics(self.redis)
        core = build_core(config, self.redis, redis_client(settings, decode=False), self.directory, self.metrics)
        # Socket Mode needs no signing secret; without one, a secret nobody knows makes Bolt refuse
        # every POST /slack/events (an empty one would let anyone sign requests).
        signing_secret = settings.slack_signing_secret or Secret(secrets.token_hex(32))
        bolt = build_app(core.service, verified_at_the_edge=True, signing_secret=signing_secret,
                         bot_token=settings.slack_bot_token, api_url=settings.slack_api_url)
        self.socket = (SocketModeConnection(bolt, settings.slack_app_token, settings.slack_api_url)
                       if settings.slack_app_token else None)
        # Its own client with a short timeout: a registry waits for the answer, and retries a 503.
        registry_events = RegistryEventsEndpoint(SenderTokens(registry_tokens or {}),
                                                 EventIntake(redis_client(settings, timeout=2.0)))
        self.web = WebApp(bolt, self.health_problem, metrics_registry(self.metrics, config.hosts),
                          signing_secret=signing_secret, metrics_token=settings.metrics_token,
                          registry_events=registry_events,
                          commands=Commands(is_slash_command, partial(acknowledge_command, core.service)))
        consumer = f"{socket.gethostname()}-{os.getpid()}"
        router = Router(config, core.subscriptions.all)
        self.registry_events = RegistryEventConsumer(self.redis, config, router, consumer=consumer,
                                                     claim_idle_ms=CLAIM_IDLE_MS)
        self.relay = Relay(self.redis, self.client, consumer=consumer, respond=post_response_url,
                           notify_channel=config.notify_channel, router=router,
                           events_registries=event_registries(config), housekeeping=core.approvals.expire_due,
                           watchdog=Watchdog(self.redis), claim_idle_ms=CLAIM_IDLE_MS, metrics=self.metrics)
        self.announcer = Announcer(self.redis, build_web_client(settings.slack_bot_token, settings.slack_api_url,
                                                                wait_on_rate_limits=False),
                                   consumer=consumer, metrics=self.metrics)
        self.audit_relay = (AuditRelay(self.redis, self.client, config.audit_channel, consumer=consumer)
                            if config.audit_channel else None)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self.directory.run, args=(self._stop,), name="regops-usergroups", daemon=True),
            threading.Thread(target=self._run_relay, name="regops-relay", daemon=True),
            threading.Thread(target=self.registry_events.run, args=(self._stop,), name="regops-registry-events",
                             daemon=True),
            threading.Thread(target=self.announcer.run, args=(self._stop,), name="regops-announcer", daemon=True),
        ]
        if self.audit_relay is not None:
            self._threads.append(threading.Thread(target=self.audit_relay.run, args=(self._stop,),
                                                  name="regops-audit-relay", daemon=True))
        if self.socket is not None:
            self._threads.append(threading.Thread(target=self.socket.run, args=(self._stop,),
                                                  name="regops-socket-mode", daemon=True))

    def health_problem(self) -> str | None:
        """None when ready: Redis answers, user groups had their first load, Socket Mode (if on) is connected."""
        if not self.directory.ready.is_set():
            return "user-group memberships not loaded yet"
        if self.socket is not None and not self.socket.connected():
            return "Socket Mode not connected"
        try:
            self._health_redis.ping()
        except redis.RedisError:
            return "redis unreachable"
        return None

    def start(self) -> None:
        if self.audit_relay is not None:
            try:  # before any request: entries written from now on reach the audit channel
                self.audit_relay.ensure_group()
            except redis.RedisError:
                log.warning("audit relay: Redis unavailable at start-up; its thread will retry")
        for thread in self._threads:
            thread.start()

    def _run_relay(self) -> None:
        try:
            identity = self.client.auth_test()
            log.info("relay: Slack identity bot_id=%s team=%s", identity.get("bot_id"), identity.get("team_id"))
        except SlackApiError as exc:  # the relay still runs; posting will report its own errors
            log.warning("relay: auth.test failed (%s)", exc.response.get("error"))
        except OSError as exc:
            log.warning("relay: auth.test failed (%s)", type(exc).__name__)
        self.relay.run(self._stop)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful end (gunicorn has stopped taking requests): finish relaying what is waiting."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        relayed = self.relay.drain(timeout)
        self.registry_events.drain(timeout)
        log.info("serve: stopped; relayed %d waiting event(s) on the way out", relayed)


class ProcessLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's own log lines ("Booting worker", "Listening at", access lines) through the process's logging.

    gunicorn gives ``gunicorn.error`` and ``gunicorn.access`` handlers and a text format of their
    own and stops them propagating; this hands their records to the root logger instead, so they
    take whatever format (``--log-format text`` or ``json``) and secret filter ``regops`` set up,
    one line per record, on stderr.  Levels and the access-log switch stay gunicorn's.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in [h for h in logger.handlers if getattr(h, "_gunicorn", False)]:
                logger.removeHandler(handler)
            logger.propagate = True


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with our options and a per-worker :class:`BotProcess`."""

    def __init__(self, settings: Settings, config: Config, options: ServeOptions,
                 registry_tokens: Mapping[str, Secret] | None = None) -> None:
        self._settings = settings
        self._config = config
        self._options = options
        self._registry_tokens = dict(registry_tokens or {})
        self._process: BotProcess | None = None
        super().__init__()

    def load_config(self) -> None:
        opts = self._options
        values: dict[str, Any] = {
            "bind": [bind_address(opts.host, opts.port)],
            "workers": opts.workers,
            "worker_class": "bot.http.worker.BufferingWorker",
            "threads": opts.threads,
            "keepalive": 5,
            "timeout": 30,
            "graceful_timeout": 20,
            "loglevel": opts.log_level,
            "errorlog": "-",
            "accesslog": "-" if opts.access_log else None,
            "proc_name": "regops-serve",
            "logger_class": ProcessLogger,
            "worker_exit": self._worker_exit,
        }
        if "control_socket_disable" in self.cfg.settings:
            # Newer gunicorn opens a control socket under $HOME, which a locked-down service may not write.
            values["control_socket_disable"] = True
        for key, value in values.items():
            self.cfg.set(key, value)

    def load(self) -> WebApp:
        self._process = BotProcess(self._settings, self._config, self._registry_tokens)
        self._process.start()
        return self._process.web

    def _worker_exit(self, _server: Any, _worker: Any) -> None:
        if self._process is not None:
            self._process.stop()


def serve(settings: Settings, config: Config, options: ServeOptions,
          registry_tokens: Mapping[str, Secret] | None = None) -> None:
    GunicornServer(settings, config, options, registry_tokens).run()
