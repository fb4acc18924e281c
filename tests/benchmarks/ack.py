"""Benchmark: acknowledgement of signed slash commands over HTTP by `regops serve`.

    python -m tests.benchmarks.ack [--phases push,help,latency] [--workers 2 --threads 8] ...

Against a real `regops serve` (gunicorn, bot/http/worker.py, its relay thread included) with its own
Redis and the local Slack stand-in (the relay posts each queued job's message there, as
it would to Slack).  No worker runs: jobs just queue.  Each phase gets a flushed Redis and
a freshly started serve, so one phase's relay backlog never weighs on the next.

* saturation (phases ``push`` and ``help``): wrk, 32 connections as fast as they go for
  20 s, cycling through a few thousand distinct pre-signed requests (own trigger_id and
  response_url each; one current timestamp, regenerated per phase).  Afterwards the jobs
  in Redis are counted and compared with the 2xx "Queued" answers wrk saw.
* latency (phase ``latency``): an open-loop arrival rate of 200 push commands/s for 30 s
  (tests/benchmarks/openloop.py, its own process), latency from each scheduled time.

Targets (issue 2): ≥ 800 queued commands/s with no errors; p99 ≤ 10 ms with no errors.

The figures move with the machine's load (serve, Redis, wrk and the stand-in share its cores).
To compare two trees' acknowledgement path alone, use ``tests/benchmarks/ackpath.py``: the
same WSGI app in-process, one thread, CPU, Redis commands and round trips per request, and
callgrind instruction counts (``--valgrind``), which the load does not move.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.benchmarks import profiling
from tests.benchmarks.common import (
    HOST,
    SLACK_PATH,
    RegistryEntry,
    Services,
    cpu_busy,
    interrupts_as_keyboard_interrupt,
    load_average,
    new_secrets,
    print_context,
    print_table,
    run_benchmark,
    signed_requests,
    verdict,
    write_config,
    write_requests,
)
from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn
from tests.support.stack import ServeProcess

HERE = Path(__file__).resolve().parent
LUA = HERE / "signed.lua"
PUSH_TEXT = "push centos7-elasticsearch latest"
HELP_TEXT = "help"
PUSH_EXPECT = "Queued"
HELP_EXPECT = "drives the Docker registry"
TARGET_RATE = 800.0
TARGET_P99_MS = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- CPU accounting (where the machine's time went during a phase) ---------------------------


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(_children(current))
    return out


class CpuMeter:
    """CPU seconds used by named process trees between start() and stop()."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self._before: dict[str, dict[int, float]] = {}
        self.used: dict[str, float] = {}
        self._children_before = 0.0
        self._wall = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        return {name: {pid: _cpu_seconds(pid) for pid in _tree(root)} for name, root in self.roots.items()}

    def start(self) -> None:
        self._before = self._sample()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._children_before = usage.ru_utime + usage.ru_stime
        self._self_before = time.process_time()
        self._wall = time.monotonic()

    def stop(self, load_generator: str) -> None:
        after = self._sample()
        for name, pids in after.items():
            self.used[name] = sum(cpu - self._before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items())
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.used[load_generator] = usage.ru_utime + usage.ru_stime - self._children_before
        self.used["this process (Slack stand-in)"] = time.process_time() - self._self_before
        self.wall = time.monotonic() - self._wall

    def summary(self) -> str:
        total = sum(self.used.values())
        parts = [f"{name} {seconds:.1f} s" for name, seconds in self.used.items()]
        return (f"CPU over {self.wall:.1f} s wall ({self.wall * (os.cpu_count() or 1):.0f} core-s available): "
                + ", ".join(parts) + f"; total {total:.1f} s")


# ---- the stack -------------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    redis_server: RedisServer
    slack: SlackStandIn
    config: str
    env: dict[str, str]
    signing_secret: str
    workdir: Path
    redis: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.redis = self.redis_server.client(decode_responses=True)

    def job_counts(self) -> tuple[int, int]:
        """(length of rq queue regops.build-1, number of regops:job:* records)."""
        queue = int(self.redis.llen(f"rq:queue:regops.{HOST}"))
        records = sum(1 for _ in self.redis.scan_iter("regops:job:*", count=5000))
        return queue, records

    def relay_posts(self) -> int:
        return len(self.slack.calls_to("chat.postMessage"))

    def start_serve(self, services: Services) -> ServeProcess:
        self.redis.flushdb()
        serve = ServeProcess(self.env, self.config, workers=self.args.workers, threads=self.args.threads)
        services.callback(serve.stop)  # a second stop() is a no-op; this one covers Ctrl-C
        serve.start()
        return serve

    def warm_up(self, serve: ServeProcess, pushes: int = 20, helps: int = 100) -> None:
        """Touch every code path once per server thread, before anything is timed."""
        for text, count in ((HELP_TEXT, helps), (PUSH_TEXT, pushes)):
            for request in signed_requests(count, text, self.signing_secret, self.slack.base_url, tag="warm"):
                http = urllib.request.Request(f"{serve.url}{SLACK_PATH}", data=request.body.encode(), headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": request.timestamp,
                    "X-Slack-Signature": request.signature,
                }, method="POST")
                with urllib.request.urlopen(http, timeout=10) as response:
                    body = response.read().decode()
                    expect = PUSH_EXPECT if text == PUSH_TEXT else HELP_EXPECT
                    if response.status != 200 or expect not in body:
                        raise RuntimeError(f"warm-up: unexpected answer {response.status}: {body[:300]}")

    def meter(self, serve: ServeProcess) -> CpuMeter:
        # Service._process is read here only for its pid (CPU accounting, py-spy).
        roots = {}
        if serve._process is not None:
            roots["regops serve"] = serve._process.pid
        if self.redis_server._process is not None:
            roots["redis"] = self.redis_server._process.pid
        return CpuMeter(roots)


# ---- phases ----------------------------------------------------------------------------------


def saturation(bench: Bench, services: Services, kind: str) -> dict[str, Any]:
    args = bench.args
    text, expect = (PUSH_TEXT, PUSH_EXPECT) if kind == "push" else (HELP_TEXT, HELP_EXPECT)
    print(f"\n-- saturation, {kind!r}: wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s "
          f"({args.distinct} distinct signed requests), load average {' '.join(f'{x:.2f}' for x in load_average())}")
    serve = bench.start_serve(services)
    try:
        bench.warm_up(serve)
        queue0, records0 = bench.job_counts()
        posts0 = bench.relay_posts()
        requests = signed_requests(args.distinct, text, bench.signing_secret, bench.slack.base_url, tag=kind)
        path = write_requests(bench.workdir / f"{kind}.tsv", requests)
        argv = ["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", f"{args.duration}s",
                "--timeout", "3s", "-s", str(LUA), f"{serve.url}{SLACK_PATH}", "--",
                str(path), str(args.wrk_threads), expect]
        meter = bench.meter(serve)
        profile_path = Path(args.profile) / f"serve-{kind}.txt" if args.profile else None
        spy = profiling.start(serve._process.pid, profile_path, args.duration) \
            if profile_path and serve._process else None
        meter.start()
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True,
                                  timeout=args.duration + 120)
        finally:
            meter.stop("wrk")
            profiling.finish(spy)
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}\n{done.stdout}")
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
        wrk = json.loads(line[len("WRK_JSON "):])
        time.sleep(1.0)  # let requests that were in flight when wrk stopped finish on the server
        queue1, records1 = bench.job_counts()
        posts1 = bench.relay_posts()
        log = serve.log_text()
    finally:
        serve.stop()
    seconds = wrk["duration_us"] / 1e6
    socket_errors = wrk["connect"] + wrk["read"] + wrk["write"]
    result = {
        "kind": kind,
        "seconds": seconds,
        "requests": wrk["requests"],
        "rate": wrk["requests"] / seconds,
        "ok_rate": wrk["matched"] / seconds,
        "ok2xx": wrk["ok2xx"],
        "matched": wrk["matched"],
        "non2xx": wrk["non2xx"] or wrk["status"],
        "unmatched": wrk["unmatched"],
        "socket_errors": socket_errors,
        "timeouts": wrk["timeout"],
        "errors": (wrk["non2xx"] or wrk["status"]) + wrk["unmatched"] + socket_errors + wrk["timeout"],
        "example": wrk["example"],
        "lat_ms": {k: wrk[f"lat_{k}_us"] / 1000 for k in ("p50", "p90", "p99", "max")},
        "queued": queue1 - queue0,
        "records": records1 - records0,
        "relay_posts": posts1 - posts0,
        "cpu": meter.summary(),
        "log_errors": [ln for ln in log.splitlines() if " ERROR " in ln or "Traceback" in ln][:5],
    }
    print(f"   {result['requests']} requests in {seconds:.1f} s = {result['rate']:.0f}/s; "
          f"{result['matched']} answered as expected; errors: non-2xx {result['non2xx']}, "
          f"unexpected body {result['unmatched']}, socket {socket_errors}, timeouts {result['timeouts']}")
    print(f"   wrk latency p50 {result['lat_ms']['p50']:.1f} ms, p99 {result['lat_ms']['p99']:.1f} ms, "
          f"max {result['lat_ms']['max']:.1f} ms (closed loop; for information)")
    if kind == "push":
        print(f"   Redis: rq queue regops.{HOST} +{result['queued']}, regops:job:* records +{result['records']}; "
              f"wrk counted {result['matched']} 'Queued' answers (difference "
              f"{result['records'] - result['matched']:+d})")
        extra = result["records"] - result["matched"]
        if 0 < extra <= args.connections:
            print(f"   (the {extra} extra jobs are the requests in flight on the {args.connections} connections "
                  f"when wrk stopped: the server completed them, wrk no longer counted them)")
    print(f"   relay chat.postMessage calls during the phase: {result['relay_posts']}")
    print(f"   {result['cpu']}")
    if result["example"]:
        print(f"   first unexpected answer: {result['example']}")
    for line in result["log_errors"]:
        print(f"   serve log: {line}")
    if profile_path:
        print(f"   py-spy profile of serve ({profile_path}):")
        for line in profiling.summarize(profile_path):
            print(f"   {line}")
    return result


def latency(bench: Bench, services: Services) -> dict[str, Any]:
    args = bench.args
    count = int(args.rate * args.latency_duration)
    print(f"\n-- latency under load: open loop, {args.rate:.0f} push commands/s for {args.latency_duration:.0f} s "
          f"({count} distinct signed requests), load average {' '.join(f'{x:.2f}' for x in load_average())}")
    serve = bench.start_serve(services)
    try:
        bench.warm_up(serve)
        queue0, records0 = bench.job_counts()
        posts0 = bench.relay_posts()
        requests = signed_requests(count, PUSH_TEXT, bench.signing_secret, bench.slack.base_url, tag="lat")
        path = write_requests(bench.workdir / "latency.tsv", requests)
        out = bench.workdir / "latency.json"
        argv = [sys.executable, "-m", "tests.benchmarks.openloop", "--url", serve.url, "--requests", str(path),
                "--rate", str(args.rate), "--duration", str(args.latency_duration), "--expect", PUSH_EXPECT,
                "--json", str(out)]
        meter = bench.meter(serve)
        profile_path = Path(args.profile) / "serve-latency.txt" if args.profile else None
        spy = profiling.start(serve._process.pid, profile_path, args.latency_duration) \
            if profile_path and serve._process else None
        meter.start()
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True,
                                  timeout=args.latency_duration + 120,
                                  cwd=HERE.parent.parent)
        finally:
            meter.stop("load generator")
            profiling.finish(spy)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr}\n{done.stdout}")
        summary = json.loads(out.read_text())
        time.sleep(0.5)
        queue1, records1 = bench.job_counts()
        posts1 = bench.relay_posts()
        log = serve.log_text()
    finally:
        serve.stop()
    summary.update({
        "queued": queue1 - queue0,
        "records": records1 - records0,
        "relay_posts": posts1 - posts0,
        "cpu": meter.summary(),
        "log_errors": [ln for ln in log.splitlines() if " ERROR " in ln or "Traceback" in ln][:5],
    })
    s = summary
    print(f"   sent {s['sent']} at {s['achieved_rate']}/s, {s['ok']} ok, {s['errors']} errors {s['error_kinds']}")
    print(f"   latency from scheduled time: p50 {s['p50_ms']} ms, p90 {s['p90_ms']} ms, p99 {s['p99_ms']} ms, "
          f"p99.9 {s['p999_ms']} ms, max {s['max_ms']} ms")
    print(f"   generator: send lag p99 {s['send_lag_p99_ms']} ms / max {s['send_lag_max_ms']} ms, "
          f"{s['connections_opened']} connections opened, at most {s['max_in_flight']} in flight")
    print(f"   Redis: rq queue +{s['queued']}, job records +{s['records']} (ok answers: {s['ok']})")
    print(f"   relay chat.postMessage calls during the phase: {s['relay_posts']}")
    print(f"   {s['cpu']}")
    for example in s["error_examples"]:
        print(f"   error: {example}")
    for line in s["log_errors"]:
        print(f"   serve log: {line}")
    if profile_path:
        print(f"   py-spy profile of serve ({profile_path}):")
        for line in profiling.summarize(profile_path):
            print(f"   {line}")
    return summary


# ---- report ----------------------------------------------------------------------------------


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> bool:
    rows: list[list[Any]] = []
    passed = True
    push = results.get("push")
    if push:
        ok_rate = push["ok_rate"] >= TARGET_RATE
        no_errors = push["errors"] == 0
        counted = push["records"] - push["matched"]
        consistent = push["records"] == push["queued"] and 0 <= counted <= args.connections
        passed &= ok_rate and no_errors and consistent
        rows += [
            ["saturation: push (queues a job)", "commands/s", f"{push['ok_rate']:.0f}", f">= {TARGET_RATE:.0f}",
             verdict(ok_rate)],
            ["", "errors (non-2xx/body/socket/timeout)",
             f"{push['non2xx']}/{push['unmatched']}/{push['socket_errors']}/{push['timeouts']}", "0",
             verdict(no_errors)],
            ["", "jobs in Redis vs wrk 'Queued'",
             f"{push['records']} records, {push['queued']} queued vs {push['matched']} ({counted:+d})",
             f"equal, +0..{args.connections} in flight", verdict(consistent)],
            ["", "wrk latency p50/p99 (closed loop)",
             f"{push['lat_ms']['p50']:.1f} / {push['lat_ms']['p99']:.1f} ms", "-", "-"],
        ]
    help_ = results.get("help")
    if help_:
        no_errors = help_["errors"] == 0
        passed &= no_errors
        rows += [
            ["saturation: help (answered at once)", "commands/s", f"{help_['ok_rate']:.0f}", "(no target)", "-"],
            ["", "errors (non-2xx/body/socket/timeout)",
             f"{help_['non2xx']}/{help_['unmatched']}/{help_['socket_errors']}/{help_['timeouts']}", "0",
             verdict(no_errors)],
        ]
    lat = results.get("latency")
    if lat:
        p99_ok = lat["p99_ms"] is not None and lat["p99_ms"] <= TARGET_P99_MS
        no_errors = lat["errors"] == 0 and lat["ok"] == lat["sent"]
        consistent = lat["records"] == lat["ok"] == lat["queued"]
        passed &= p99_ok and no_errors and consistent
        rows += [
            [f"latency: open loop {args.rate:.0f}/s x {args.latency_duration:.0f} s", "p50 / p90",
             f"{lat['p50_ms']:.2f} / {lat['p90_ms']:.2f} ms", "-", "-"],
            ["", "p99", f"{lat['p99_ms']:.2f} ms", f"<= {TARGET_P99_MS:.0f} ms", verdict(p99_ok)],
            ["", "max", f"{lat['max_ms']:.2f} ms", "-", "-"],
            ["", "count / errors", f"{lat['sent']} / {lat['errors']}", "0 errors", verdict(no_errors)],
            ["", "jobs in Redis vs ok answers", f"{lat['records']} vs {lat['ok']}", "equal", verdict(consistent)],
        ]
    print_table(f"regops ack benchmark (serve: {args.workers} workers x {args.threads} threads)", rows,
                ["benchmark", "figure", "measured", "target", "result"])
    return passed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.ack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="push,help,latency",
                        help="comma-separated: push, help (saturation), latency (default all three)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--duration", type=int, default=20, help="seconds per saturation phase (default 20)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    # More than a phase can send: a repeated request is, by design, deduplicated (same trigger_id).
    parser.add_argument("--distinct", type=int, default=80000, help="distinct requests per saturation phase")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop arrivals/s (default 200)")
    parser.add_argument("--latency-duration", type=float, default=30.0, help="open-loop seconds (default 30)")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="py-spy-profile serve during each phase, write collapsed stacks to DIR and "
                             "print a summary (needs py-spy in the venv; sampling costs some throughput)")
    parser.add_argument("--log-level", default=None, help="REGOPS_LOG_LEVEL for serve (default: regops' own)")
    args = parser.parse_args(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phase_list) - {"push", "help", "latency"}
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None and ({"push", "help"} & set(args.phase_list)):
        print("ack benchmark: wrk is not installed (apt-get install wrk; run.sh does it)", file=sys.stderr)
        return 2
    print_context("regops ack benchmark: machine", {
        "CPU busy just before start": cpu_busy(),
        "serve": f"{args.workers} workers x {args.threads} threads (bot.http.worker.BufferingWorker)",
    })
    signing_secret, bot_token = new_secrets()
    results: dict[str, dict[str, Any]] = {}
    with interrupts_as_keyboard_interrupt(), Services() as services:
        workdir = Path(tempfile.mkdtemp(prefix="regops-bench-ack-"))
        services.callback(shutil.rmtree, workdir, True)
        redis_server = services.start(RedisServer())
        slack = services.enter_context(SlackStandIn(bot_token))
        config = str(write_config(workdir, [RegistryEntry("main", "dockerhub.example.com:5100")]))
        env = {"REDIS_URL": redis_server.url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
               "SLACK_SIGNING_SECRET": signing_secret}
        if args.log_level:
            env["REGOPS_LOG_LEVEL"] = args.log_level
        bench = Bench(args, redis_server, slack, config, env, signing_secret, workdir)
        services.callback(bench.redis.close)
        for phase in args.phase_list:
            if phase == "latency":
                results[phase] = latency(bench, services)
            else:
                results[phase] = saturation(bench, services, phase)
    passed = report(results, args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_average())}")
    print("ack benchmark:", "all targets met" if passed else "TARGETS MISSED")
    return 0 if passed else 1


if __name__ == "__main__":
    run_benchmark(main, "ack")
