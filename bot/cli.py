"""The ``regops`` command: serve, worker, shell, check-config, audit. Reads the environment once, here."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import Settings, read_metrics_token
from bot.slack.identities import load_bot_config
from workers.kernel.config import Config, resolve_config_path
from workers.kernel.config.summary import config_warnings
from workers.kernel.errors import ConfigError
from workers.kernel.keys import rq_workers_key
from workers.kernel.logs import LOG_FORMATS, configure_logging
from workers.kernel.secrets import SecretMasker

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help="config file (default: $REGOPS_CONFIG, else ./regops.yaml)")
    common.add_argument("--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING, ERROR")
    common.add_argument("--log-format", default=argparse.SUPPRESS, choices=LOG_FORMATS,
                        help="text (default) or json: one JSON object per line (also $REGOPS_LOG_FORMAT)")

    parser = argparse.ArgumentParser(prog="regops", parents=[common],
                                     description="Slack chat-ops for a private Docker registry.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common],
                           help="run the Slack bot (HTTP, or Socket Mode with SLACK_APP_TOKEN) and the job relay")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")),
                       help="port to listen on (default: $PORT, else 3000)")
    serve.add_argument("--bind", default="0.0.0.0", metavar="ADDRESS",
                       help="address to listen on: 0.0.0.0 (default, every IPv4 interface), 127.0.0.1 (this "
                            "machine only, behind a local reverse proxy), :: (IPv6) or one interface's address")
    serve.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    serve.add_argument("--threads", type=int, default=8,
                       help="threads running the app in each server process (default 8); a request reaches "
                            "one only once it has fully arrived")
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")

    worker = sub.add_parser("worker", parents=[common],
                            help="run the job worker of one Docker host (and the registry queue)")
    serves = worker.add_mutually_exclusive_group(required=True)
    serves.add_argument("--host", help="the configured Docker host this worker serves, then the registry queue")
    serves.add_argument("--registry-only", action="store_true",
                        help="serve only the registry queue (promote, delete, rollback, tags, inspect): "
                             "no Docker engine needed")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.add_argument("--grace", type=float, default=None,
                        help="on SIGTERM, seconds the current job may still run before it goes back to the queue")

    shell = sub.add_parser("shell", parents=[common], help="the console front end (no Slack needed)")
    shell.add_argument("--user", default=os.environ.get("REGOPS_USER", "U0CONSOLE"),
                       help="the Slack-style user ID commands run as (default: $REGOPS_USER, else U0CONSOLE)")
    shell.add_argument("--channel", default="C0CONSOLE", help="the channel ID commands come from")
    shell.add_argument("--no-worker", action="store_true",
                       help="do not start a worker for the default host alongside the shell")
    shell.add_argument("--worker-log", default=os.path.join(tempfile.gettempdir(), "regops-shell-worker.log"),
                       help="where the worker started alongside writes its log")
    shell.add_argument("--log-file", default=os.path.join(tempfile.gettempdir(), "regops-shell.log"),
                       help="where the shell's own log goes while it runs at a terminal (else: stderr)")

    check = sub.add_parser("check-config", parents=[common], help="validate the config and print a summary")
    check.add_argument("--live", action="store_true",
                       help="also check Redis, Slack (auth.test), the Docker engine and a login to every registry")

    audit = sub.add_parser("audit", parents=[common],
                           help="print the audit trail, oldest first (needs only REDIS_URL)",
                           description="Print the audit trail, oldest first. Standard output carries only "
                                       "entries; diagnostics go to standard error.")
    audit.add_argument("--since", type=_duration, metavar="DURATION",
                       help="only entries of the last DURATION, e.g. 90s, 30m, 2h, 7d")
    audit.add_argument("--user", metavar="ID", help="only entries of this Slack user ID")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _duration(text: str) -> float:
    from bot.core.audit import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(args: argparse.Namespace) -> Config:
    path = resolve_config_path(getattr(args, "config", None), os.environ)
    return load_bot_config(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env(os.environ)
    # The shell prints its own story on stdout; its log only needs to say what went wrong.
    default_level = "WARNING" if args.command == "shell" else "INFO"
    level = getattr(args, "log_level", None) or os.environ.get("REGOPS_LOG_LEVEL", default_level)
    log_format = getattr(args, "log_format", None) or os.environ.get("REGOPS_LOG_FORMAT", "text")
    masker = configure_logging(level, [settings.slack_bot_token, settings.slack_signing_secret,
                                       settings.slack_app_token, settings.redis_url, settings.redis_password],
                               fmt=log_format)

    if args.command == "worker":
        return _run_worker(args)
    if args.command == "audit":
        return _audit(args, settings)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"regops: the config has {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    if args.command == "check-config":
        warnings = config_warnings(config)
        for warning in warnings:
            print(f"regops: warning: {warning}", file=sys.stderr)
        print(config.summary())
        print(f"config ok, with {len(warnings)} warning(s) (on stderr)" if warnings else "config ok")
        return _check_live(settings, config, resolve_config_path(getattr(args, "config", None), os.environ)) \
            if args.live else 0
    if args.command == "serve":
        return _serve(args, settings, config, masker)
    if args.command == "shell":
        return _shell(args, settings, config)
    return 2


def _check_live(settings: Settings, config: Config, path: Path) -> int:
    from bot.live_check import live_checks, passed

    checks = live_checks(settings, config, path)
    print("live checks:")
    for check in checks:
        verdict = "ok" if check.ok else ("FAILED" if check.required else "failed (not fatal)")
        print(f"  {check.name}: {verdict} — {check.detail}")
    ok = passed(checks)
    print("live checks ok" if ok else "live checks FAILED")
    return 0 if ok else 1


def _worker_argv(args: argparse.Namespace, host: str | None, burst: bool = False) -> list[str]:
    """``python -m workers`` for Docker host ``host`` (and the registry queue), or the registry queue alone."""
    argv = [sys.executable, "-m", "workers", *(["--host", host] if host else ["--registry-only"])]
    if getattr(args, "grace", None) is not None:
        argv += ["--grace", str(args.grace)]
    if getattr(args, "config", None):
        argv += ["--config", args.config]
    if getattr(args, "log_level", None):
        argv += ["--log-level", args.log_level]
    if getattr(args, "log_format", None):
        argv += ["--log-format", args.log_format]
    if burst:
        argv.append("--burst")
    return argv


def _run_worker(args: argparse.Namespace) -> int:
    # The worker is its own program: the bot package never imports the Docker side.
    argv = _worker_argv(args, args.host, args.burst)
    os.execv(argv[0], argv)
    return 127  # not reached


def _serve(args: argparse.Namespace, settings: Settings, config: Config, masker: SecretMasker) -> int:
    from bot.http.registry_events import read_events_tokens

    problems = settings.slack_problems()
    try:
        token = read_metrics_token(config.metrics_token, os.environ)
    except ValueError as exc:
        problems.append(str(exc))
    registry_tokens, token_problems = read_events_tokens(config.registries, os.environ)
    problems += token_problems
    if problems:
        for problem in problems:
            print(f"regops serve: {problem}", file=sys.stderr)
        return 2
    masker.add_secrets(registry_tokens.values())
    if token is not None:
        masker.add_secrets([token])
        settings = dataclasses.replace(settings, metrics_token=token)
    from bot.http.server import ServeOptions, serve

    serve(settings, config, ServeOptions(host=args.bind, port=args.port, workers=args.workers,
                                         threads=args.threads, access_log=args.access_log,
                                         log_level=(getattr(args, "log_level", None) or "info").lower()),
          registry_tokens)
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    # The trail must stay readable when the config is broken or absent: Redis is all it needs.
    import time

    import redis

    from bot.core.audit import AuditLog, format_line

    connection = redis.Redis.from_url(settings.redis_url.reveal(), decode_responses=True,
                                      socket_timeout=10, socket_connect_timeout=5)
    since = time.time() - args.since if args.since is not None else None
    printed = 0
    try:
        for entry in AuditLog(connection).entries(since=since, user=args.user):
            line = json.dumps(entry.to_json(), sort_keys=True) if args.json else format_line(entry)
            sys.stdout.write(line + "\n")
            printed += 1
        sys.stdout.flush()
    except redis.RedisError as exc:
        print(f"regops audit: cannot read the audit trail from Redis at {settings.redis_url_masked} "
              f"({type(exc).__name__}). Start Redis or set REDIS_URL.", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (e.g. `| head`) has gone: stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        connection.close()
    if printed == 0:
        print("regops audit: no entries" + (" match" if since is not None or args.user else ""), file=sys.stderr)
    return 0


def _shell(args: argparse.Namespace, settings: Settings, config: Config) -> int:
    import redis

    from bot.connections import redis_client
    from bot.console.shell import PROMPT, Shell
    from bot.core.assembly import build_core

    connection = redis_client(settings)
    try:
        connection.ping()
    except redis.RedisError as exc:
        print(f"regops shell: cannot reach Redis at {settings.redis_url_masked} ({type(exc).__name__}). "
              f"Start Redis or set REDIS_URL.", file=sys.stderr)
        return 1
    # The console has no Slack to ask about user groups: their grants fail closed here.
    service = build_core(config, connection, redis_client(settings, decode=False)).service
    interactive = sys.stdin.isatty()
    at_terminal = sys.stdout.isatty()
    shell = Shell(service, connection, user=args.user, channel=args.channel, out=sys.stdout,
                  job_wait=lambda action: config.timeouts.for_action(action) + 60.0,
                  prompt=PROMPT if interactive else None, styled=at_terminal)
    if at_terminal:
        # Log lines would land between the prompt and the job lines: at a terminal they go to a file.
        _log_to_file(args.log_file)
        print(f"(log: {args.log_file})", file=sys.stderr)

    with contextlib.ExitStack() as stack:
        if not args.no_worker:
            worker = stack.enter_context(_worker_alongside(_worker_argv(args, config.default_host),
                                                           args.worker_log))
            _await_worker(connection, config.default_host, worker)
            print(f"(worker for host {config.default_host} started, log: {args.worker_log})", file=sys.stderr)
        if interactive:
            print("regops shell: type `help`, or e.g. `push IMAGE TAG`; `exit` or Ctrl-D to leave.")
        try:
            return shell.run(sys.stdin)
        except KeyboardInterrupt:
            return 130


def _log_to_file(path: str) -> None:
    stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the rest of the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)


def _await_worker(connection: redis.Redis, host: str, worker: subprocess.Popen[bytes],
                  timeout: float = 15.0) -> None:
    """Give the worker started alongside a moment to register, so the first ack knows it is live."""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        if connection.scard(rq_workers_key(host)):
            return
        time.sleep(0.1)


@contextlib.contextmanager
def _worker_alongside(argv: list[str], log_path: str) -> Iterator[subprocess.Popen[bytes]]:
    """A worker subprocess for the shell's session, stopped (SIGTERM, then SIGKILL) when it ends."""
    with open(log_path, "ab") as log_file:
        worker = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
