"""Composition root of a worker: ``python -m workers --host NAME [--config PATH] [--burst] [--grace S]``.

Reads the environment once (REDIS_URL, DOCKER_HOST, REGOPS_CONFIG), builds the
Redis and Docker clients, the credential store and the retry policy (the config's
``registries:`` and ``retries:`` sections), installs the task context and
runs the safe rq worker on the Docker host's queue.  Logging is set up here too,
with every registry password and the Redis password masked in every log record of
the process, whichever logger (ours, rq, docker, urllib3) made it.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import docker
import docker.errors
import redis
import requests

from workers import tasks
from workers.credentials import CredentialStore, parse_registries, read_config
from workers.errors import ConfigError, WorkerError
from workers.kernel.keys import queue_name
from workers.kernel.logs import JsonLogFormatter
from workers.retries import parse_retries
from workers.worker import DEFAULT_GRACE_SECONDS, SafeSimpleWorker, SafeWorker, make_worker

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "********"
MASK_REFRESH_SECONDS = 30.0
"""How soon a rotated password (read from its file or variable at job time) is masked too."""


def secret_forms(secret: str) -> set[str]:
    """Every form in which ``secret`` could reach a log line.

    Besides the value itself: JSON-escaped and URL-encoded, and base64 (standard and
    URL-safe alphabets) — docker sends credentials as base64 JSON in X-Registry-Auth,
    so for each of the three byte alignments the run of base64 characters that
    depends on the secret alone is masked too.
    """
    if len(secret) < 4:
        return set()  # masking a two-letter "password" would mask half the log
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms = {secret, escaped, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for text in {secret, escaped, json.dumps(secret)[1:-1]}:
        data = text.encode()
        for offset in range(3):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(b"\0" * offset + data).decode()
                start, end = -(-8 * offset // 6), 8 * (offset + len(data)) // 6
                if end - start >= 6:
                    forms.add(encoded[start:end])
    return forms


class SecretMask:
    """Masks secrets in every log record as it is made (a log-record factory), at every level.

    A handler filter sees only the records that reach that handler; rq and others may
    add handlers of their own.  The record factory runs for every record of every
    logger, so nothing reaches any handler unmasked.  It takes no lock (rq forks work
    horses while its other threads may be logging), and it never raises into the code
    that logs: a record it cannot mask is replaced by a notice.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sources: list[Callable[[], Iterable[str]]] = []
        self._last_good: dict[int, set[str]] = {}
        self._clock = clock
        self._pattern: re.Pattern[str] | None = None
        self._expires = 0.0
        self._local = threading.local()

    def add_source(self, source: Callable[[], Iterable[str]]) -> None:
        """``source`` returns the current secret values; it is asked again every MASK_REFRESH_SECONDS."""
        self._sources.append(source)
        self._expires = 0.0

    def mask(self, text: str) -> str:
        pattern = self._current()
        return pattern.sub(MASK, text) if pattern is not None else text

    def _current(self) -> re.Pattern[str] | None:
        # Two threads refreshing at once compute the same thing; a source that logs while
        # being asked gets the previous pattern instead of recursing.
        if self._clock() < self._expires or getattr(self._local, "refreshing", False):
            return self._pattern
        self._local.refreshing = True
        try:
            forms: set[str] = set()
            for index, source in enumerate(list(self._sources)):
                try:
                    values = set().union(*(secret_forms(value) for value in source()))
                    self._last_good[index] = values
                except Exception:  # noqa: BLE001 - keep masking what this source gave last time
                    values = self._last_good.get(index, set())
                forms |= values
            # Longest first, so a secret is masked whole rather than around a shorter one inside it.
            ordered = sorted(forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            self._expires = self._clock() + MASK_REFRESH_SECONDS
            return self._pattern
        finally:
            self._local.refreshing = False

    def scrub(self, record: logging.LogRecord) -> None:
        try:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - logging would print the raw arguments in its error report
                message = f"{record.msg} (unformattable arguments {record.args!r})"
            # Formatted now, once: the arguments must not reach a handler unmasked.
            record.msg, record.args = self.mask(message), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.mask(record.exc_text)
            if record.stack_info:
                record.stack_info = self.mask(record.stack_info)
        except Exception:  # noqa: BLE001 - fail closed, and never break the code that logs
            record.msg, record.args = "(log record withheld: it could not be checked for secrets)", None
            record.exc_info = record.exc_text = record.stack_info = None

    def install(self) -> None:
        """Make every log record of this process (and of forked work horses) go through :meth:`scrub`."""
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            self.scrub(record)
            return record

        logging.setLogRecordFactory(factory)


def url_secrets(url: str) -> list[str]:
    """The password (and the URL-decoded one) carried by a URL such as REDIS_URL."""
    password = urllib.parse.urlsplit(url).password
    return [password, urllib.parse.unquote(password)] if password else []


def registry_passwords(credentials: CredentialStore) -> list[str]:
    """The current password of every configured registry this worker can read."""
    values = []
    for name in credentials.names():
        try:
            values.append(credentials.get(name).password.reveal())
        except ConfigError:
            continue
    return values


def configure_logging(level: int, mask: SecretMask, log_format: str = "text") -> None:
    mask.install()
    logging.basicConfig(level=level, format=LOG_FORMAT)
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
    # Warnings (urllib3's among them) become log records, so they are masked too.
    logging.captureWarnings(True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="regops worker", description="Run registry jobs for one Docker host."
    )
    parser.add_argument("--host", required=True, help="Docker host name; the worker listens on its queue")
    parser.add_argument("--config", help="regops config file (default: $REGOPS_CONFIG, else ./regops.yaml)")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-format", choices=("text", "json"),
                        default=os.environ.get("REGOPS_LOG_FORMAT", "text"),
                        help="text (default) or json: one JSON object per line (also $REGOPS_LOG_FORMAT)")
    parser.add_argument(
        "--no-fork", action="store_true", help="run jobs in the worker process (no work horse; for debugging)"
    )
    parser.add_argument(
        "--docker-timeout",
        type=int,
        default=600,
        help="seconds a Docker API read may stall before the engine counts as unreachable (default 600)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_SECONDS,
        help="on SIGTERM, seconds the current job may still run before it is handed back to the queue "
        f"(default {DEFAULT_GRACE_SECONDS:g})",
    )
    return parser.parse_args(argv)


def build_context(
    config: str | None,
    environ: Mapping[str, str],
    *,
    docker_timeout: int = 600,
    progress_interval: float = 1.0,
) -> tasks.TaskContext:
    """Clients and credentials from the environment; raises WorkerError on a bad config."""
    data, source = read_config(config, environ)
    credentials = CredentialStore(parse_registries(data, source), environ)
    retries = parse_retries(data, source)
    for problem in credentials.missing_passwords():
        # Not fatal: jobs for the other registries can still run; this one's jobs fail clearly.
        log.warning("%s", problem)
    connection = redis.Redis.from_url(environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    docker_host = environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST

    def docker_api() -> docker.APIClient:
        return docker.APIClient(base_url=docker_host, timeout=docker_timeout)

    return tasks.TaskContext(
        redis=connection,
        docker_api=docker_api,
        credentials=credentials,
        progress_interval=progress_interval,
        retries=retries,
    )


def _check_engine(context: tasks.TaskContext) -> None:
    # An engine that is down now may be back before the next job: warn, do not exit.
    try:
        api = context.docker_api()
        try:
            api.ping()
        finally:
            api.close()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log.warning("Docker engine not reachable at start-up: %s", exc)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        print(f"unknown log level {args.log_level!r}")
        return 2
    mask = SecretMask()
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    mask.add_source(lambda: url_secrets(redis_url))
    configure_logging(level, mask, args.log_format)

    try:
        context = build_context(args.config, os.environ, docker_timeout=args.docker_timeout)
    except WorkerError as exc:
        log.error("cannot start: %s", exc.user_message)
        return 2
    credentials = context.credentials
    mask.add_source(lambda: registry_passwords(credentials))
    try:
        context.redis.ping()
    except redis.RedisError as exc:
        log.error("cannot start: Redis unreachable: %s", exc)
        return 3

    _check_engine(context)
    tasks.install(context)
    worker_class = SafeSimpleWorker if args.no_fork else SafeWorker
    worker = make_worker(args.host, context.redis, worker_class=worker_class, grace=args.grace)
    log.info(
        "worker %s listening on %s (registries: %s, burst: %s)",
        worker.name,
        queue_name(args.host),
        ", ".join(context.credentials.names()),
        args.burst,
    )
    try:
        worker.work(burst=args.burst, logging_level=logging.getLevelName(level))
    finally:
        tasks.uninstall()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
