"""Cost of one acknowledged push inside `regops serve`'s WSGI app, without the server around it.

    PYTHONPATH=$PWD .venv/bin/python -m tests.benchmarks.ackpath [--requests 2000] [--text "push …"]

Builds what one serve worker process builds (bot.http.server.BotProcess: service, web app, the
edge guard; its relay threads are not started) against its own Redis and the Slack stand-in,
then calls the web app with pre-signed slash commands, one at a time, in this one thread.  It
prints what a push costs, figures that the machine's load barely moves (for A/B comparisons
of the ack path; ``ack.py`` measures the whole server):

* CPU time per request (this process, ``time.process_time``; no other thread runs);
* Redis commands per request (INFO commandstats, by command) and round trips per request
  (connections' writes: one per pipeline or command sent).

Under ``valgrind --tool=callgrind`` (``--valgrind``) the instruction count of ``--requests``
requests is the difference of two runs (N and 2N requests), so start-up cancels out (the
requests' signing, in the driver, stays in: the same for every tree).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from tests.benchmarks.common import (
    HOST,
    SLACK_PATH,
    RegistryEntry,
    Services,
    new_secrets,
    signed_requests,
    write_config,
)
from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn

PUSH_TEXT = "push centos7-elasticsearch latest"


def _environ(request: Any) -> dict[str, Any]:
    body = request.body.encode()
    return {"PATH_INFO": SLACK_PATH, "REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": "",
            "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_SLACK_REQUEST_TIMESTAMP": request.timestamp, "HTTP_X_SLACK_SIGNATURE": request.signature,
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "3000"}


class _Writes:
    """Counts socket writes of redis-py connections (one per command or pipeline sent: a round trip)."""

    def __init__(self) -> None:
        from redis.connection import AbstractConnection
        self.count = 0
        original = AbstractConnection.send_packed_command

        def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            self.count += 1
            original(conn, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


def _commandstats(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})


def run(count: int, text: str, expect: str, warm: int) -> dict[str, Any]:
    from bot.http.server import BotProcess
    from bot.settings import Settings
    from bot.slack.identities import load_bot_config

    signing_secret, bot_token = new_secrets()
    with Services() as services:
        workdir = Path(tempfile.mkdtemp(prefix="regops-bench-ackpath-"))
        services.callback(shutil.rmtree, workdir, True)
        redis_server = services.start(RedisServer())
        slack = services.enter_context(SlackStandIn(bot_token))
        config = load_bot_config(write_config(workdir, [RegistryEntry("main", "dockerhub.example.com:5100")]))
        settings = Settings.from_env({"REDIS_URL": redis_server.url, "SLACK_API_URL": slack.api_url,
                                      "SLACK_BOT_TOKEN": bot_token, "SLACK_SIGNING_SECRET": signing_secret})
        process = BotProcess(settings, config)
        requests = signed_requests(warm + count, text, signing_secret, slack.base_url, tag="path")
        environs = [_environ(r) for r in requests]
        answers: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answers.append(status)

        def call(environ: dict[str, Any]) -> bytes:
            return b"".join(process.web(environ, start_response))

        for environ in environs[:warm]:
            call(environ)
        admin = redis_server.client(decode_responses=True)
        before = _commandstats(admin)
        writes = _Writes()
        bodies = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for environ in environs[warm:]:
            bodies.append(call(environ))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        round_trips = writes.count
        after = _commandstats(admin)
        bad = sum(1 for body in bodies if expect.encode() not in body) + sum(1 for s in answers if s[:3] != "200")
        queued = int(admin.llen(f"rq:queue:regops.{HOST}"))
        after["info"] -= 1  # the second INFO
        per = {name: (after[name] - before[name]) / count for name in after if after[name] != before[name]}
        admin.close()
    return {"count": count, "cpu_ms": cpu * 1000 / count, "wall_ms": wall * 1000 / count, "bad": bad,
            "queued": queued, "round_trips": round_trips / count, "commands": per}


def _valgrind(args: argparse.Namespace) -> None:
    counts = []
    # Once natively first, so that neither counted run compiles .pyc files (that alone is millions).
    subprocess.run([sys.executable, "-m", "tests.benchmarks.ackpath", "--requests", "5", "--warm", "1"],
                   check=True, capture_output=True, env=os.environ)
    for n in (args.requests, 2 * args.requests):
        out = Path(tempfile.mkdtemp()) / "cg.out"
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
                "tests.benchmarks.ackpath", "--requests", str(n), "--text", args.text, "--expect", args.expect]
        done = subprocess.run(argv, check=False, capture_output=True, text=True, env=os.environ)
        line = next((ln for ln in done.stderr.splitlines() if "Collected" in ln), "")
        counts.append(int(line.split(":")[-1].strip().replace(",", "")) if line else 0)
        shutil.rmtree(out.parent, True)
    print(f"instructions per request (callgrind, {2 * args.requests} - {args.requests} requests): "
          f"{(counts[1] - counts[0]) / args.requests / 1e6:.3f} M")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--text", default=PUSH_TEXT)
    parser.add_argument("--expect", default="Queued")
    parser.add_argument("--valgrind", action="store_true", help="count instructions under callgrind instead")
    args = parser.parse_args(argv)
    if args.valgrind:
        _valgrind(args)
        return 0
    result = run(args.requests, args.text, args.expect, args.warm)
    commands = ", ".join(f"{name} {calls:g}" for name, calls in sorted(result["commands"].items()))
    print(f"{result['count']} requests: CPU {result['cpu_ms']:.3f} ms/request, wall {result['wall_ms']:.3f} ms; "
          f"round trips {result['round_trips']:.2f}/request; Redis commands/request: "
          f"{sum(result['commands'].values()):g} ({commands}); unexpected answers {result['bad']}; "
          f"rq queue length {result['queued']}; load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 1 if result["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
