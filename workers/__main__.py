"""Composition root of a worker: ``python -m workers --host NAME [--config PATH] [--burst] [--grace S]``.

Reads the environment once (REDIS_URL, DOCKER_HOST, REGOPS_CONFIG), loads the whole config
with the kernel's loader (as the bot does), builds the Redis and Docker clients, the
credential store (``Config.registries``) and the retry policy (``Config.retries``),
installs the task context and runs the safe rq worker on the Docker host's queue.  Logging is set up here too,
with every registry password and the Redis password masked in every log record of
the process, whichever logger (ours, rq, docker, urllib3) made it.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence

import docker
import docker.errors
import redis
import requests

from workers import tasks
from workers.credentials import CredentialStore
from workers.kernel.actions import REGISTRY_QUEUE
from workers.kernel.config import load_config, resolve_config_path
from workers.kernel.errors import ConfigError
from workers.kernel.keys import queue_name
from workers.kernel.logs import LOG_FORMATS, configure_logging
from workers.kernel.secrets import SecretMasker, url_secrets
from workers.worker import DEFAULT_GRACE_SECONDS, SafeSimpleWorker, SafeWorker, make_worker

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="regops worker",
        description="Run regops jobs: those of one Docker host, then the registry queue's (promote, delete, "
        "rollback, tags, inspect); or, with --registry-only, only the registry queue's.",
    )
    serves = parser.add_mutually_exclusive_group(required=True)
    serves.add_argument("--host", help="Docker host name; the worker listens on its queue, then the registry queue")
    serves.add_argument("--registry-only", action="store_true",
                        help="serve only the registry queue: no Docker engine needed, only the registry's API")
    parser.add_argument("--config", help="regops config file (default: $REGOPS_CONFIG, else ./regops.yaml)")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-format", choices=LOG_FORMATS,
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
    engine: bool = True,
) -> tasks.TaskContext:
    """Clients and credentials from the config and the environment; ConfigError if the config is unusable."""
    settings = load_config(resolve_config_path(config, environ))
    credentials = CredentialStore(settings.registries, environ)
    for problem in credentials.missing_passwords():
        # Not fatal: jobs for the other registries can still run; this one's jobs fail clearly.
        log.warning("%s", problem)
    connection = redis.Redis.from_url(environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    docker_host = environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST

    def docker_api() -> docker.APIClient:
        return docker.APIClient(base_url=docker_host, timeout=docker_timeout)

    return tasks.TaskContext(
        redis=connection,
        docker_api=docker_api if engine else None,
        credentials=credentials,
        progress_interval=progress_interval,
        retries=settings.retries,
        guards=settings.guards,
        namespaces={name: registry.namespace for name, registry in settings.registries.items()},
    )


def _check_engine(context: tasks.TaskContext) -> None:
    # An engine that is down now may be back before the next job: warn, do not exit.
    if context.docker_api is None:
        return
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
    masker = SecretMasker()
    masker.add_secrets(url_secrets(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL))
    configure_logging(level, masker, args.log_format)

    try:
        context = build_context(args.config, os.environ, docker_timeout=args.docker_timeout,
                                engine=not args.registry_only)
    except ConfigError as exc:
        log.error("cannot start: %s", exc.summary())
        return 2
    masker.add_source(context.credentials.passwords)
    try:
        context.redis.ping()
    except redis.RedisError as exc:
        log.error("cannot start: Redis unreachable: %s", exc)
        return 3

    _check_engine(context)
    tasks.install(context)
    worker_class = SafeSimpleWorker if args.no_fork else SafeWorker
    queues = [REGISTRY_QUEUE] if args.registry_only else [args.host, REGISTRY_QUEUE]
    worker = make_worker(queues, context.redis, worker_class=worker_class, grace=args.grace)
    log.info(
        "worker %s listening on %s (registries: %s, burst: %s)",
        worker.name,
        ", ".join(queue_name(queue) for queue in queues),
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
