"""Slow clients against a real `regops serve`: 500 connections that never finish their request (a header
line a second, silence after the request line, a body a byte a second) hold no request thread.

Without the buffering worker (gunicorn's gthread, 2 x 8 threads) every probe below timed out and no slow
connection was closed. The latency assertion is generous (the machine is shared); the figure the issue
asks for (p99 within 100 ms) is measured by ``bash tests/benchmarks/run.sh slow``.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.http.worker import BODY_TIMEOUT, HEADER_TIMEOUT, MAX_BODY_BYTES
from tests.benchmarks.common import PUSH_USER, RegistryEntry, write_config
from tests.benchmarks.slowclients import KINDS, command_probe, healthz_probe, percentiles_line, run
from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn
from tests.support.stack import ServeProcess

SLOW_CONNECTIONS = 500
CLOSE_BOUND = HEADER_TIMEOUT + BODY_TIMEOUT
"""A slow connection is closed at most this long after it opened (headers, then body, each in total)."""


@dataclass
class Running:
    serve: ServeProcess
    slack: SlackStandIn
    signing_secret: str


@pytest.fixture(scope="module")
def running(redis_server: RedisServer) -> Iterator[Running]:
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-slow-" + secrets.token_hex(12)
    config = write_config(Path(tempfile.mkdtemp(prefix="regops-slow-")),
                          [RegistryEntry("main", "dockerhub.example.com:5100")])
    with SlackStandIn(bot_token) as slack:
        serve = ServeProcess({"REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/13",
                              "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                              "SLACK_SIGNING_SECRET": signing_secret},
                             str(config), workers=2, threads=8)  # as shipped
        try:
            serve.start()
            yield Running(serve, slack, signing_secret)
        finally:
            serve.stop()


def test_500_slow_connections_hold_no_thread_and_are_closed_in_bounded_time(running: Running) -> None:
    serve = running.serve
    probes = [healthz_probe(),
              command_probe(running.signing_secret, running.slack.response_url("slow"),
                            text="push centos7-elasticsearch latest", user=PUSH_USER, expect="Queued")]
    result = run("127.0.0.1", serve.port, connections=SLOW_CONNECTIONS, probes=probes, duration=8.0,
                 probe_interval=0.1, probe_timeout=5.0, linger=CLOSE_BOUND + 2.0)
    with urllib.request.urlopen(f"{serve.url}/healthz", timeout=5) as response:
        assert response.status == 200
    log = serve.log_text()
    report = "\n".join(percentiles_line(p) for p in result.probes.values())
    for probe in result.probes.values():
        assert not probe.failures, f"{probe.name}: {probe.failures[:5]}\n{report}"
        assert len(probe.latencies_ms) >= 70, report
        p99 = probe.percentile(0.99)
        assert p99 is not None and p99 < 1000, report
    # The server closed every slow connection, each within the bound, while the attacker kept reopening them.
    assert result.opened >= SLOW_CONNECTIONS, result.opened
    assert result.still_open == dict.fromkeys(KINDS, 0), result.still_open
    for kind in KINDS:
        closes = result.closed_after_s[kind]
        assert closes and max(closes) <= CLOSE_BOUND + 1.0, (kind, max(closes, default=None))
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def test_a_body_over_the_limit_gets_413_before_it_is_sent(running: Running) -> None:
    with socket.create_connection(("127.0.0.1", running.serve.port), timeout=5) as conn:
        started = time.monotonic()
        conn.sendall(f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                     f"\r\nContent-Length: {20 * MAX_BODY_BYTES}\r\n\r\ntoken=".encode())
        answer = b""
        while chunk := conn.recv(4096):  # the server answers, then closes: none of the 20 MB was needed
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert time.monotonic() - started < 3.0


def test_bind_takes_ipv4_and_ipv6_addresses() -> None:
    from bot.http.server import bind_address

    assert bind_address("0.0.0.0", 3000) == "0.0.0.0:3000"
    assert bind_address("127.0.0.1", 3000) == "127.0.0.1:3000"
    assert bind_address("::", 3000) == "[::]:3000"
    assert bind_address("[::1]", 3000) == "[::1]:3000"


def test_head_and_http_1_0_and_a_chunked_body_are_answered(running: Running) -> None:
    def exchange(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", running.serve.port), timeout=5) as conn:
            conn.sendall(data)
            answer = b""
            while b"\r\n\r\n" not in answer or (data.startswith(b"GET") and not answer.endswith(b"}")):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                answer += chunk
            return answer

    head = exchange(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n"), head
    assert exchange(b"GET /healthz HTTP/1.0\r\n\r\n").endswith(b'{"status": "ok"}')
    # An unsigned body sent in chunks reaches Bolt whole (and is refused for want of a signature).
    chunked = exchange(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                       b"Content-Type: application/x-www-form-urlencoded\r\n\r\n5\r\ntoken\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 401 "), chunked
