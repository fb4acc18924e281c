"""Benchmark: registry notifications — intake latency and the fan-out to channels under Slack's limit.

    python -m tests.benchmarks.events [--phases intake,fanout] [--rate 200 --duration 30] ...

Against a real `regops serve` (its registry-event consumer and announcer threads included) with its
own Redis and the Slack stand-in.  The envelopes are shaped as the Distribution registry sends them
(``application/vnd.docker.distribution.events.v1+json``, bearer token, manifest pushes under tags).

* intake: an open-loop 200 envelopes/s of 10 push events each for 30 s (tests/benchmarks/openloop.py,
  its own process), latency from each scheduled time to the 2xx; afterwards every event must be in
  Redis (the stream), once.  Target (issue 11): p99 ≤ 20 ms, no error.
* fanout: 1,000 push events over 10 s (10 envelopes/s of 10), each routed to 5 channels; the stand-in
  answers 429 to a second message within a second in one channel, as Slack does.  Targets: every push
  visible in each of its channels, Slack calls per channel ≤ 1.2/s averaged, the last announcement
  ≤ 5 s after the last event was acknowledged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.benchmarks.common import (
    NAMESPACE,
    Services,
    cpu_busy,
    interrupts_as_keyboard_interrupt,
    load_average,
    new_secrets,
    print_context,
    print_table,
    run_benchmark,
    verdict,
)
from tests.benchmarks.openloop import write_raw
from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn
from tests.support.stack import ServeProcess
from workers.kernel.keys import REGISTRY_EVENTS_STREAM

HERE = Path(__file__).resolve().parent
EVENTS_PATH = "/registry/events"
MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SERVER = "dockerhub.example.com:5100"
CHANNELS = ("C0FAN1", "C0FAN2", "C0FAN3", "C0FAN4", "C0FAN5")
TARGET_P99_MS = 20.0
TARGET_CALLS_PER_S = 1.2
TARGET_LAST_S = 5.0


def write_config(directory: Path, *, routes: bool) -> Path:
    route_lines = "".join(f"    - {{channel: {c}, images: [\"**\"], tags: [\"*\"]}}\n" for c in CHANNELS)
    path = directory / "regops.yaml"
    path.write_text(textwrap.dedent(f"""\
        registries:
          main:
            server: {SERVER}
            services_hostname: namespace.example.com
            username: user001@namespace.example.com
            password_env: REGISTRY_PASSWORD
            events_token_env: REGISTRY_EVENTS_TOKEN
        default_registry: main
        hosts: [build-1]
        default_host: build-1
        access:
          roles:
            admin: {{actions: ["*"]}}
          grants:
            - {{role: admin, users: [U0ADMIN]}}
        """) + (f"notifications:\n  routes:\n{route_lines}" if routes else ""))
    return path


def _timestamp(at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}123Z"


def digest_of(index: int) -> str:
    return "sha256:" + f"{index:064x}"


def envelope(first: int, count: int, run: str) -> bytes:
    """``count`` manifest pushes (each its own repository tag and digest) as Distribution 2.8 words them."""
    now = time.time()
    events = []
    for index in range(first, first + count):
        events.append({
            "id": str(uuid.uuid4()), "timestamp": _timestamp(now), "action": "push",
            "target": {"mediaType": MANIFEST, "size": 528, "digest": digest_of(index), "length": 528,
                       "repository": f"{NAMESPACE}/bench-{run}-{index % 50}", "tag": f"t{index}",
                       "url": f"http://{SERVER}/v2/{NAMESPACE}/bench/manifests/{digest_of(index)}"},
            "request": {"id": str(uuid.uuid4()), "addr": "127.0.0.1:40000", "host": SERVER, "method": "PUT",
                        "useragent": "docker/20.10"},
            "actor": {"name": "ci@namespace.example.com"},
            "source": {"addr": "registry:5000", "instanceID": run},
        })
    return json.dumps({"events": events}).encode()


def http_request(body: bytes, token: str, host: str) -> bytes:
    head = (f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MEDIA_TYPE}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def post(url: str, body: bytes, token: str) -> int:
    request = urllib.request.Request(f"{url}{EVENTS_PATH}", data=body, method="POST", headers={
        "Content-Type": MEDIA_TYPE, "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return int(response.status)


class Bench:
    def __init__(self, args: argparse.Namespace, services: Services, workdir: Path) -> None:
        self.args = args
        self.services = services
        self.workdir = workdir
        signing_secret, self.bot_token = new_secrets()
        self.token = uuid.uuid4().hex + uuid.uuid4().hex
        self.redis_server: RedisServer = services.start(RedisServer())
        self.redis = self.redis_server.client(decode_responses=True)
        services.callback(self.redis.close)
        self.slack = services.enter_context(SlackStandIn(self.bot_token))
        self.env = {"REDIS_URL": self.redis_server.url, "SLACK_API_URL": self.slack.api_url,
                    "SLACK_BOT_TOKEN": self.bot_token, "SLACK_SIGNING_SECRET": signing_secret,
                    "REGISTRY_EVENTS_TOKEN": self.token}

    def serve(self, *, routes: bool) -> ServeProcess:
        self.redis.flushdb()
        config = write_config(self.workdir, routes=routes)
        serve = ServeProcess(self.env, str(config), workers=self.args.workers, threads=self.args.threads)
        self.services.callback(serve.stop)
        serve.start()
        return serve


def intake(bench: Bench) -> dict[str, Any]:
    args = bench.args
    count = int(args.rate * args.duration)
    print(f"\n-- intake: open loop, {args.rate:.0f} envelopes/s of 10 push events for {args.duration:.0f} s, "
          f"load average {' '.join(f'{x:.2f}' for x in load_average())}")
    serve = bench.serve(routes=False)
    try:
        for index in range(20):  # warm every thread
            post(serve.url, envelope(10_000_000 + index * 10, 10, "warm"), bench.token)
        before = int(bench.redis.xlen(REGISTRY_EVENTS_STREAM))
        host = serve.url.removeprefix("http://")
        raw = [http_request(envelope(index * 10, 10, "in"), bench.token, host) for index in range(count)]
        path = bench.workdir / "envelopes.jsonl"
        write_raw(str(path), raw)
        out = bench.workdir / "intake.json"
        argv = [sys.executable, "-m", "tests.benchmarks.openloop", "--url", serve.url, "--raw", str(path),
                "--rate", str(args.rate), "--duration", str(args.duration), "--expect", "{", "--json", str(out)]
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=args.duration + 120,
                              cwd=HERE.parent.parent)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr}\n{done.stdout}")
        summary: dict[str, Any] = json.loads(out.read_text())
        summary["stored"] = int(bench.redis.xlen(REGISTRY_EVENTS_STREAM)) - before
        log = serve.log_text()
    finally:
        serve.stop()
    summary["expected"] = count * 10
    summary["log_errors"] = [ln for ln in log.splitlines() if " ERROR " in ln or "Traceback" in ln][:5]
    s = summary
    print(f"   sent {s['sent']} envelopes at {s['achieved_rate']}/s, {s['ok']} ok, {s['errors']} errors "
          f"{s['error_kinds']}")
    print(f"   latency from scheduled time: p50 {s['p50_ms']} ms, p90 {s['p90_ms']} ms, p99 {s['p99_ms']} ms, "
          f"max {s['max_ms']} ms")
    print(f"   events in the stream: {s['stored']} of {s['expected']}")
    for line in s["error_examples"] + s["log_errors"]:
        print(f"   error: {line}")
    return summary


def fanout(bench: Bench) -> dict[str, Any]:
    args = bench.args
    total, per_envelope = args.fanout_events, 10
    envelopes = total // per_envelope
    spacing = args.fanout_duration / envelopes
    print(f"\n-- fan-out: {total} push events over {args.fanout_duration:.0f} s to {len(CHANNELS)} channels, "
          f"Slack answering 429 past 1 message/s per channel")
    bench.slack.channel_interval = 1.0
    serve = bench.serve(routes=True)
    try:
        start = time.time()
        for index in range(envelopes):
            time.sleep(max(0.0, start + index * spacing - time.time()))
            status = post(serve.url, envelope(index * per_envelope, per_envelope, "fan"), bench.token)
            if not 200 <= status < 300:
                raise RuntimeError(f"envelope {index} answered {status}")
        last_event = time.time()
        wanted = {digest_of(i)[:19] for i in range(total)}

        def seen(channel: str) -> set[str]:
            texts = [json.dumps(c.params.get("blocks")) for c in bench.slack.calls_to("chat.postMessage")
                     if c.ok and c.params.get("channel") == channel]
            return {d for d in wanted if any(d in text for text in texts)}

        deadline = last_event + args.fanout_wait
        while time.time() < deadline and any(seen(c) != wanted for c in CHANNELS):
            time.sleep(0.25)
        time.sleep(1.5)  # anything posted after the last push would count against the rate
    finally:
        serve.stop()
    rows, figures = [], {}
    for channel in CHANNELS:
        calls = [c for c in bench.slack.calls_to("chat.postMessage") if c.params.get("channel") == channel]
        posted = [c for c in calls if c.ok]
        span = max(1.0, (calls[-1].at - calls[0].at)) if calls else 1.0
        rate = len(calls) / max(span, args.fanout_duration)
        last = max((c.at for c in posted), default=float("inf")) - last_event
        missing = len(wanted - seen(channel))
        figures[channel] = {"calls": len(calls), "posted": len(posted), "rate": rate, "last_s": last,
                            "missing": missing}
        rows.append([channel, len(calls), len(posted), f"{rate:.2f}/s", f"{last:.2f} s", missing])
    print_table("   per channel", rows, ["channel", "Slack calls", "messages", "calls/s", "last after events",
                                         "pushes missing"])
    return {"channels": figures}


def report(results: dict[str, dict[str, Any]]) -> bool:
    rows, passed = [], True
    if "intake" in results:
        s = results["intake"]
        ok = s["errors"] == 0 and s["p99_ms"] is not None and s["p99_ms"] <= TARGET_P99_MS \
            and s["stored"] == s["expected"]
        passed &= ok
        rows.append(["intake p99 (200 envelopes/s x 10 events)", f"{s['p99_ms']} ms", (f"≤ {TARGET_P99_MS} ms, "
                     f"no error, all stored ({s['stored']}/{s['expected']})"), verdict(ok)])
    if "fanout" in results:
        figures = results["fanout"]["channels"].values()
        missing = sum(f["missing"] for f in figures)
        worst_rate = max(f["rate"] for f in figures)
        worst_last = max(f["last_s"] for f in figures)
        for label, value, target, ok in (
                ("fan-out: pushes missing in a channel", missing, "0", missing == 0),
                ("fan-out: Slack calls per channel", f"{worst_rate:.2f}/s", f"≤ {TARGET_CALLS_PER_S}/s",
                 worst_rate <= TARGET_CALLS_PER_S),
                ("fan-out: last announcement after last event", f"{worst_last:.2f} s", f"≤ {TARGET_LAST_S} s",
                 worst_last <= TARGET_LAST_S)):
            passed &= ok
            rows.append([label, value, target, verdict(ok)])
    print_table("registry events benchmark: results", rows, ["figure", "measured", "target", "verdict"])
    return passed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.events", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="intake,fanout", help="comma-separated: intake, fanout")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
    parser.add_argument("--rate", type=float, default=200.0, help="intake envelopes/s (default 200)")
    parser.add_argument("--duration", type=float, default=30.0, help="intake seconds (default 30)")
    parser.add_argument("--fanout-events", type=int, default=1000, help="fan-out push events (default 1000)")
    parser.add_argument("--fanout-duration", type=float, default=10.0, help="fan-out seconds (default 10)")
    parser.add_argument("--fanout-wait", type=float, default=60.0, help="seconds to wait for the last post")
    args = parser.parse_args(argv)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phase_list) - {"intake", "fanout"}
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_context("regops registry events benchmark: machine", {"CPU busy just before start": cpu_busy()})
    results: dict[str, dict[str, Any]] = {}
    with interrupts_as_keyboard_interrupt(), Services() as services:
        workdir = Path(tempfile.mkdtemp(prefix="regops-bench-events-"))
        services.callback(shutil.rmtree, workdir, True)
        bench = Bench(args, services, workdir)
        for phase in args.phase_list:
            results[phase] = intake(bench) if phase == "intake" else fanout(bench)
    passed = report(results)
    print("registry events benchmark:", "all targets met" if passed else "TARGETS MISSED")
    return 0 if passed else 1


if __name__ == "__main__":
    run_benchmark(main, "events")
