"""Benchmark: `/healthz` and a signed slash command while 500 slow connections are open (issue 9, item 1).

    python -m tests.benchmarks.slow [--connections 500] [--duration 20] [--workers 2 --threads 8]

Against a real `regops serve` (as shipped: 2 workers x 8 threads) with its own Redis and the Slack
stand-in. The slow connections (tests/benchmarks/slowclients.py) are a third each: a request line then
one header line a second; a request line then silence; whole headers then one body byte a second.
Each reopens when the server closes it, so the count stays at ``--connections`` while the probes run:
a GET /healthz and a signed ``push`` (it queues a job; no worker runs) every ``--interval`` s each, on
a fresh connection, timed from when it was due. The attacker and the probes run in this process, on
the same machine as serve.

Targets: p99 of both <= 100 ms with no failed probe; every slow connection closed by the server within
the bound (header deadline + body deadline, bot/http/worker.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bot.http.worker import BODY_TIMEOUT, HEADER_TIMEOUT
from tests.benchmarks.ack import CpuMeter
from tests.benchmarks.common import (
    PUSH_USER,
    RegistryEntry,
    Services,
    cpu_busy,
    interrupts_as_keyboard_interrupt,
    load_average,
    new_secrets,
    print_context,
    print_table,
    run_benchmark,
    verdict,
    write_config,
)
from tests.benchmarks.slowclients import KINDS, command_probe, healthz_probe, percentiles_line, run
from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn
from tests.support.stack import ServeProcess

TARGET_P99_MS = 100.0
CLOSE_BOUND = HEADER_TIMEOUT + BODY_TIMEOUT


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.slow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=500, help="slow connections kept open (default 500)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of probing (default 20)")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between probes of each kind")
    parser.add_argument("--workers", type=int, default=2, help="serve worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_context("regops slow-client benchmark: machine", {
        "CPU busy just before start": cpu_busy(),
        "serve": f"{args.workers} workers x {args.threads} threads",
        "slow connections": f"{args.connections} ({', '.join(KINDS)}), reopened when closed",
    })
    signing_secret, bot_token = new_secrets()
    with interrupts_as_keyboard_interrupt(), Services() as services:
        workdir = Path(tempfile.mkdtemp(prefix="regops-bench-slow-"))
        redis_server = services.start(RedisServer())
        slack = services.enter_context(SlackStandIn(bot_token))
        config = write_config(workdir, [RegistryEntry("main", "dockerhub.example.com:5100")])
        serve = ServeProcess({"REDIS_URL": redis_server.url, "SLACK_API_URL": slack.api_url,
                              "SLACK_BOT_TOKEN": bot_token, "SLACK_SIGNING_SECRET": signing_secret},
                             str(config), workers=args.workers, threads=args.threads)
        services.callback(serve.stop)
        serve.start()
        probes = [healthz_probe(),
                  command_probe(signing_secret, slack.response_url("slow"), text="push centos7-elasticsearch latest",
                                user=PUSH_USER, expect="Queued")]
        print(f"\n-- {args.connections} slow connections, probes every {args.interval * 1000:.0f} ms for "
              f"{args.duration:.0f} s, load average {' '.join(f'{x:.2f}' for x in load_average())}")
        meter = CpuMeter({"regops serve": serve._process.pid} if serve._process else {})
        meter.start()
        result = run("127.0.0.1", serve.port, connections=args.connections, probes=probes, duration=args.duration,
                     probe_interval=args.interval, probe_timeout=5.0, linger=CLOSE_BOUND + 2.0)
        meter.stop("slow-client process")
        log = serve.log_text()
    print("   " + meter.summary().replace("this process (Slack stand-in)", "this process (probes, Slack stand-in)"))
    for probe in result.probes.values():
        print("   " + percentiles_line(probe))
        for failure in probe.failures[:3]:
            print(f"     failed: {failure}")
    rows = []
    passed = True
    for probe in result.probes.values():
        p99 = probe.percentile(0.99)
        ok = p99 is not None and p99 <= TARGET_P99_MS and not probe.failures
        passed &= ok
        rows.append([probe.name, "p50 / p99 / max",
                     "-" if p99 is None else f"{probe.percentile(0.5):.1f} / {p99:.1f} / {probe.percentile(1.0):.1f} ms",
                     f"p99 <= {TARGET_P99_MS:.0f} ms", verdict(ok)])
        rows.append(["", "answered / failed", f"{len(probe.latencies_ms)} / {len(probe.failures)}", "0 failed", "-"])
    for kind in KINDS:
        closes = sorted(result.closed_after_s[kind])
        ok = bool(closes) and closes[-1] <= CLOSE_BOUND + 1.0 and result.still_open[kind] == 0
        passed &= ok
        rows.append([f"slow: {kind}", "closed by server after (min / max)",
                     f"{closes[0]:.2f} / {closes[-1]:.2f} s ({len(closes)} closed, {result.still_open[kind]} open)"
                     if closes else f"none closed ({result.still_open[kind]} open)",
                     f"<= {CLOSE_BOUND:.0f} s, none left", verdict(ok)])
    errors = [ln for ln in log.splitlines() if " ERROR " in ln or "Traceback" in ln]
    passed &= not errors
    rows.append(["serve log", "ERROR lines / tracebacks", str(len(errors)), "0", verdict(not errors)])
    print_table(f"regops slow-client benchmark (serve: {args.workers} workers x {args.threads} threads; "
                f"{result.opened} slow connections opened in {result.duration_s:.0f} s)", rows,
                ["benchmark", "figure", "measured", "target", "result"])
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_average())}")
    print("slow benchmark:", "all targets met" if passed else "TARGETS MISSED")
    return 0 if passed else 1


if __name__ == "__main__":
    run_benchmark(lambda: main(sys.argv[1:]), "slow")
