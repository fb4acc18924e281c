"""The HTTP edge against a real `regops serve` (DEBUG logging): oversized bodies, a stale signed
`login -p`, malformed requests, `/metrics` behind its bearer token; and malformed Socket Mode envelopes.

Every attack is on loopback and bounded; each test fails without the edge (bot/http/guard.py).
"""

from __future__ import annotations

import json
import secrets
import socket
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.leaks import leaked_forms
from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn, sign, slash_command_body
from tests.support.socket_standin import SocketModeStandIn
from tests.support.stack import ServeProcess, descendants

DB, SOCKET_DB = 14, 15
BIG = 20 * 1024 * 1024
CONFIG = textwrap.dedent("""\
    registries:
      main:
        server: registry.invalid:5000
        services_hostname: namespace.example.com
        username: ci
        password_env: REGISTRY_PASSWORD
    hosts: [build-1]
    metrics_token_env: REGOPS_METRICS_TOKEN
    access:
      roles:
        admin: {actions: ["*"]}
      grants:
        - {role: admin, users: [U0ADMIN]}
    """)


@dataclass
class Edge:
    serve: ServeProcess
    slack: SlackStandIn
    redis_url: str
    signing_secret: str
    metrics_token: str
    config: Path

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.serve.url}/slack/events", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def signed(self, body: str, content_type: str | None = None, timestamp: int | None = None) -> tuple[int, bytes]:
        headers = sign(self.signing_secret, body, timestamp)
        if content_type:
            headers["Content-Type"] = content_type
        return self.post(body.encode(), headers)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.serve.url}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def rss_kib(self, field: str = "VmRSS") -> int:
        """Resident memory (``VmHWM``: its peak so far) of serve and every process below it, in KiB."""
        assert self.serve._process is not None
        total = 0
        for pid in [self.serve._process.pid, *descendants(self.serve._process.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith(f"{field}:")), 0)
        return total

    def settled_peak(self, timeout: float = 20.0) -> int:
        """``VmHWM`` of serve's processes once it stops growing for a second: gunicorn's second worker may
        still be starting (importing, connecting) when /healthz first answers, and its growth is no request's."""
        deadline = time.monotonic() + timeout
        last = self.rss_kib("VmHWM")
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = self.rss_kib("VmHWM")
            if now == last:
                return now
            last = now
        return last

    def log_size(self) -> int:
        return len(self.serve.log_text().encode())


@pytest.fixture(scope="module")
def edge(redis_server: RedisServer) -> Iterator[Edge]:
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-edge-" + secrets.token_hex(12)
    metrics_token = "mt-" + secrets.token_urlsafe(24)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    directory = Path(tempfile.mkdtemp(prefix="regops-edge-"))
    config = directory / "regops.yaml"
    config.write_text(CONFIG)
    with SlackStandIn(bot_token) as slack:
        env = {"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
               "SLACK_SIGNING_SECRET": signing_secret, "REGOPS_METRICS_TOKEN": metrics_token}
        serve = ServeProcess(env, str(config), workers=2, extra=["--log-level", "DEBUG"])
        try:
            serve.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield Edge(serve, slack, redis_url, signing_secret, metrics_token, config)
        finally:
            serve.stop()
            redis.Redis.from_url(redis_url).flushdb()


def assert_no_traceback(log: str) -> None:
    assert "Traceback" not in log
    assert " ERROR " not in log, [line for line in log.splitlines() if " ERROR " in line][:3]


# ---- 2: bodies are bounded, and never logged --------------------------------------------------------


def _big_post(url: str, *, chunked: bool, results: list[str]) -> None:
    """Send one unsigned 20 MB POST (declared, or chunked in 1 MB chunks); record the status line."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG}"
        conn.sendall(f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded"
                     f"\r\n{framing}\r\n\r\n".encode())
        chunk = b"text=" + b"A" * (1024 * 1024 - 5)
        try:
            for _ in range(BIG // len(chunk)):
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                conn.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the client has sent it all: that is the point
        try:
            results.append(conn.recv(200).split(b"\r\n", 1)[0].decode(errors="replace"))
        except OSError as exc:
            results.append(f"no answer ({type(exc).__name__})")


def test_eight_concurrent_20mb_posts_get_413_without_memory_or_log_growth(edge: Edge) -> None:
    before_peak = edge.settled_peak()
    before_rss, before_log = edge.rss_kib(), edge.log_size()
    answers: dict[str, list[str]] = {}
    for framing in ("content-length", "chunked"):
        results: list[str] = []
        threads = [threading.Thread(target=_big_post, args=(edge.serve.url,),
                                    kwargs={"chunked": framing == "chunked", "results": results})
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        answers[framing] = results
    after_rss, after_peak, after_log = edge.rss_kib(), edge.rss_kib("VmHWM"), edge.log_size()
    print(f"\nserve RSS (all processes): {before_rss / 1024:.1f} MiB before, {after_rss / 1024:.1f} MiB after "
          f"8 + 8 concurrent unsigned 20 MB POSTs; peak {before_peak / 1024:.1f} -> {after_peak / 1024:.1f} MiB; "
          f"log grew by {after_log - before_log} bytes; {answers}")
    # A declared length over the limit is 413 before a byte of the body is read. A chunked body has no
    # length to look at: the buffering worker (tornado) stops reading it at the limit and answers 400.
    refusals = {"content-length": ("HTTP/1.1 413",), "chunked": ("HTTP/1.1 413", "HTTP/1.1 400")}
    for framing, results in answers.items():
        assert len(results) == 8 and all(r.startswith(refusals[framing]) for r in results), (framing, results)
    assert after_peak - before_peak < 40 * 1024, (before_peak, after_peak)
    assert after_log - before_log < 64 * 1024
    assert edge.get("/healthz")[0] == 200


def test_a_stale_signed_login_with_a_password_is_401_and_the_password_is_in_no_log_line(edge: Edge) -> None:
    password = "pw-" + secrets.token_urlsafe(18)
    body = slash_command_body(f"login -p {password}", user_id="U0ADMIN",
                              response_url=edge.slack.response_url("stale"))
    status, _ = edge.signed(body, timestamp=int(time.time()) - 600)
    assert status == 401
    status, _ = edge.post(body.encode(), {"Content-Type": "application/x-www-form-urlencoded"})  # unsigned
    assert status == 401
    log = edge.serve.log_text()
    assert "DEBUG" in log  # the serve runs at DEBUG: nothing is hidden by the level
    assert leaked_forms(log, password) == []
    assert "Invalid request signature" not in log  # Bolt never saw them
    assert password not in edge.slack.everything_sent()


# ---- 5: malformed requests are 400/401, never 500 ---------------------------------------------------

MALFORMED_TIMESTAMPS = ["", "abc", "1.5", "{now}.0", "-1"]
MALFORMED_BODIES = {
    "json content type, not JSON": ("{not json", "application/json"),
    "payload=notjson": ("payload=notjson", None),
    "signed payload=[1,2]": ("payload=" + urllib.parse.quote("[1,2]"), None),
    "block_actions with no actions": ("payload=" + urllib.parse.quote(json.dumps(
        {"type": "block_actions", "user": {"id": "U0ADMIN"}, "team": {"id": "T0TEAM"}})), None),
    "json array body": ("[1,2]", "application/json"),
}


@pytest.mark.parametrize("timestamp", MALFORMED_TIMESTAMPS)
def test_a_malformed_timestamp_is_401_without_a_traceback(edge: Edge, timestamp: str) -> None:
    body = slash_command_body("help", user_id="U0ADMIN")
    headers = {**sign(edge.signing_secret, body),
               "X-Slack-Request-Timestamp": timestamp.format(now=int(time.time()))}
    before = edge.log_size()
    assert edge.post(body.encode(), headers)[0] == 401
    assert_no_traceback(edge.serve.log_text()[before:])
    assert edge.get("/healthz")[0] == 200


@pytest.mark.parametrize("name", sorted(MALFORMED_BODIES))
def test_a_signed_malformed_body_is_400_without_a_traceback(edge: Edge, name: str) -> None:
    body, content_type = MALFORMED_BODIES[name]
    before = edge.log_size()
    status, answer = edge.signed(body, content_type)
    assert status == 400, (status, answer)
    assert "error" in json.loads(answer)
    assert_no_traceback(edge.serve.log_text()[before:])
    assert edge.get("/healthz")[0] == 200


def test_a_body_that_is_not_utf8_is_400_without_a_traceback(edge: Edge) -> None:
    raw = b"command=%2Fregistry&text=\xff\xfe\xfd"
    before = edge.log_size()
    assert edge.post(raw, sign(edge.signing_secret, "anything"))[0] == 400
    assert_no_traceback(edge.serve.log_text()[before:])
    assert edge.get("/healthz")[0] == 200


def test_a_well_formed_signed_command_still_gets_its_answer(edge: Edge) -> None:
    status, answer = edge.signed(slash_command_body("help", user_id="U0ADMIN"))
    assert status == 200 and json.loads(answer)["response_type"] == "ephemeral"


# ---- 8: /metrics behind a bearer token ---------------------------------------------------------------


def _metrics_reads(redis_url: str, action: Callable[[], object]) -> list[str]:
    """The Redis commands that touch metrics keys while ``action`` runs (MONITOR on a side connection)."""
    monitor_client = redis.Redis.from_url(redis_url)
    seen: list[str] = []
    with monitor_client.monitor() as monitor:
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                try:
                    command = monitor.next_command()["command"]
                except (redis.RedisError, OSError, ValueError):
                    return
                if "regops:metrics" in command or "rq:queue" in command:
                    seen.append(command)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.2)
        action()
        time.sleep(0.3)
        done.set()
    monitor_client.close()
    return seen


def test_metrics_want_the_bearer_token_and_read_nothing_without_it(edge: Edge) -> None:
    def refused() -> None:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {edge.metrics_token}"},
                        {"Authorization": f"Bearer {edge.metrics_token}x"}, {"Authorization": "Bearer"}):
            status, answer = edge.get("/metrics", headers)
            assert status == 401, headers
            assert b"regops_" not in answer

    assert _metrics_reads(edge.redis_url, refused) == []
    reads = _metrics_reads(edge.redis_url, lambda: edge.get("/metrics", {
        "Authorization": f"Bearer {edge.metrics_token}"}))
    assert reads, "the authorized scrape read the counters"  # the probe itself works
    status, answer = edge.get("/metrics", {"Authorization": f"bearer  {edge.metrics_token}"})
    assert status == 200 and b"regops_commands_total" in answer
    assert leaked_forms(edge.serve.log_text(), edge.metrics_token) == []


def test_check_config_says_metrics_are_protected_and_never_shows_the_token(edge: Edge) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(edge.config), "check-config"],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                                 "REGOPS_METRICS_TOKEN": edge.metrics_token})
    assert result.returncode == 0, result.stderr
    assert "metrics: protected, a bearer token from environment variable REGOPS_METRICS_TOKEN" in result.stdout
    assert edge.metrics_token not in result.stdout + result.stderr


def test_serve_refuses_to_start_when_the_configured_token_is_not_set(edge: Edge) -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bot", "--config", str(edge.config), "serve", "--bind",
                             "127.0.0.1", "--port", "9"], capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                                 "SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s" * 32})
    assert result.returncode == 2
    assert "metrics token is empty" in result.stderr and "REGOPS_METRICS_TOKEN" in result.stderr


# ---- 5 over Socket Mode: malformed envelopes ----------------------------------------------------------


def test_malformed_socket_mode_envelopes_are_dropped_without_a_traceback(redis_server: RedisServer,
                                                                         tmp_path: Path) -> None:
    bot_token = "xoxb-edge-" + secrets.token_hex(12)
    app_token = "xapp-1-A0REGOPS-" + secrets.token_hex(12)
    password = "pw-" + secrets.token_urlsafe(18)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{SOCKET_DB}"
    config = tmp_path / "regops.yaml"
    config.write_text(CONFIG.replace("metrics_token_env: REGOPS_METRICS_TOKEN\n", ""))
    with SocketModeStandIn() as standin, SlackStandIn(bot_token, app_token=app_token, socket=standin) as slack:
        serve = ServeProcess({"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                              "SLACK_APP_TOKEN": app_token}, str(config), extra=["--log-level", "DEBUG"])
        try:
            serve.start()
            (conn_id,) = standin.wait_connections(1, timeout=30)
            connection = standin.open[conn_id]
            ids = []
            for payload in ([1, 2], "x", {"type": "block_actions", "user": {"id": "U0ADMIN"}},
                            {"type": "block_actions", "actions": [1]}, {"command": "/registry", "user": 5},
                            {"command": "/registry", "text": f"login -p {password}", "authorizations": "x"}):
                envelope_id = secrets.token_hex(8)
                ids.append(envelope_id)
                connection.send(json.dumps({"envelope_id": envelope_id, "type": "interactive",
                                            "accepts_response_payload": True, "payload": payload}))
            connection.send("{not json")
            for envelope_id in ids:
                assert standin.wait_ack(envelope_id, timeout=10).payload in (None, {})
            body = slash_command_body("help", user_id="U0ADMIN", response_url=slack.response_url("ok"))
            envelope = standin.send("slash_commands", dict(urllib.parse.parse_qsl(body)))
            assert "help" in json.dumps(standin.wait_ack(envelope, timeout=10).payload).lower()
            log = serve.log_text()
        finally:
            serve.stop()
            redis.Redis.from_url(redis_url).flushdb()
        assert_no_traceback(log)
        assert log.count("malformed interactive envelope was acknowledged and dropped") == len(ids)
        assert "a message that is not JSON was dropped" in log
        assert leaked_forms(log, password) == []
