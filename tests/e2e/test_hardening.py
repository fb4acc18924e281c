"""Hardening, end to end: `regops serve` and `regops worker` over a Redis that wants a password, an ACL
user or TLS; no token, signing secret or password in any log line even at debug level; a foreign job
written straight into Redis is refused by a real worker.  Also the worker's log mask on its own."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from bot.core.audit import format_line
from tests.e2e.conftest import registries_yaml
from tests.support.leaks import leaked_forms
from tests.support.services import DockerEngine, RedisServer, Registry, build_image
from tests.support.slack_standin import SlackStandIn, sign, slash_command_body
from tests.support.stack import RegopsProcess, ServeProcess
from workers.kernel.audit import AuditEntry
from workers.kernel.keys import queue_name

ROOT = Path(__file__).resolve().parents[2]
JOB_ID = re.compile(r"job `([0-9a-f]{12})`")
NAMESPACE = "com.example.namespace"
AUDIT_CHANNEL = "C0AUDIT"


# ---- a small stack on a Redis of the test's choosing ----------------------------------------------


@dataclass
class Harness:
    slack: SlackStandIn
    serve: ServeProcess
    workers: dict[str, RegopsProcess]
    redis_url: str
    signing_secret: str
    bot_token: str

    def command(self, text: str, user: str = "U0ADMIN", channel: str = "C0OPS") -> dict:
        body = slash_command_body(text, user_id=user, channel_id=channel,
                                  response_url=self.slack.response_url(f"r{time.time_ns()}"))
        request = urllib.request.Request(f"{self.serve.url}/slack/events", data=body.encode(),
                                         headers=sign(self.signing_secret, body), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            raw = response.read()
        return json.loads(raw) if raw else {}

    def queued(self, text: str, **kwargs: str) -> str:
        body = self.command(text, **kwargs)
        match = JOB_ID.search(body.get("text", ""))
        assert match, f"{text!r} was not queued: {body!r}"
        return match.group(1)

    def final_message(self, job_id: str, timeout: float = 120.0) -> str:
        def find() -> str | None:
            for message in self.slack.messages.values():
                text = message.get("text") or ""
                if f"job {job_id}" in text and text.startswith(("succeeded", "failed")):
                    return text
            return None
        return str(self.slack.wait_for(find, timeout, f"the final message of job {job_id}"))

    def logs(self) -> str:
        return "\n".join(p.log_text() for p in [self.serve, *self.workers.values()])


def config_text(registry: Registry, hosts: list[str]) -> str:
    return registries_yaml(registry) + textwrap.dedent(f"""\
        audit_channel: {AUDIT_CHANNEL}
        default_registry: main
        hosts: [{", ".join(hosts)}]
        default_host: {hosts[0]}
        timeouts: {{push: 5m, pull: 5m, tag: 1m, login: 1m}}
        access:
          roles:
            admin: {{actions: ["*"]}}
          grants:
            - {{role: admin, users: [U0ADMIN]}}
        """)


@contextlib.contextmanager
def harness(redis_url: str, engine: DockerEngine, registry: Registry, directory: Path, *,
            hosts: dict[str, str], log_level: str | None = None) -> Iterator[Harness]:
    """serve + one worker per host (host → the registry password that worker holds)."""
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-hardening-" + secrets.token_hex(12)
    config = directory / "regops.yaml"
    config.write_text(config_text(registry, list(hosts)))
    level = ["--log-level", log_level] if log_level else []
    with SlackStandIn(bot_token) as slack:
        common = {"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                  "SLACK_SIGNING_SECRET": signing_secret, "DOCKER_HOST": engine.host}
        serve = ServeProcess(common, str(config), extra=level)
        workers = {host: RegopsProcess(f"worker-{host}", ["--config", str(config), *level, "worker", "--host", host],
                                       {**common, "REGISTRY_PASSWORD": password})
                   for host, password in hosts.items()}
        started: list[RegopsProcess] = []
        try:
            for process in (serve, *workers.values()):
                try:
                    process.start()
                except RuntimeError as exc:
                    pytest.fail(str(exc), pytrace=False)
                started.append(process)
            yield Harness(slack, serve, workers, redis_url, signing_secret, bot_token)
        finally:
            for process in reversed(started):
                process.stop()


def started(server: RedisServer) -> RedisServer:
    try:
        return server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def regops_audit(redis_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "audit", "--json"], capture_output=True, text=True,
                          timeout=60, cwd=cwd, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url})


# ---- Redis with a password, an ACL user, TLS -------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "acl_user", "tls"),
    [(True, None, False), (True, "regops-app", False), (False, None, True), (True, "regops-tls", True)],
    ids=["requirepass", "acl-user", "tls", "tls-acl-user"],
)
def test_serve_and_worker_run_a_job_over_a_protected_redis(password: bool, acl_user: str | None, tls: bool,
                                                           docker_engine: DockerEngine, registry: Registry,
                                                           tmp_path: Path) -> None:
    redis_password = "rp-" + secrets.token_urlsafe(18) if password else None
    server = started(RedisServer(password=redis_password, acl_user=acl_user, tls=tls))
    try:
        # The server really wants what the URL carries: a bare client is turned away.
        bare = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2, socket_connect_timeout=2)
        with pytest.raises((redis.AuthenticationError, redis.ConnectionError)):
            bare.ping()
        bare.close()
        if tls:
            assert server.url.startswith("rediss://") and "ssl_ca_certs=" in server.url

        with harness(server.url, docker_engine, registry, tmp_path, hosts={"build-1": registry.password}) as stack:
            job_id = stack.queued("login")
            final = stack.final_message(job_id)
            assert final.startswith("succeeded"), final
            assert registry.server in final

            audit = regops_audit(server.url, tmp_path)
            assert audit.returncode == 0, audit.stderr
            outcomes = [json.loads(line) for line in audit.stdout.splitlines()]
            assert any(e["kind"] == "job" and e["job_id"] == job_id and e["decision"] == "succeeded"
                       and e["user"] == "U0ADMIN" for e in outcomes), outcomes

            if redis_password:
                logs = stack.logs()
                assert leaked_forms(logs, redis_password) == []
                assert leaked_forms(audit.stdout + audit.stderr, redis_password) == []
                assert redis_password not in stack.slack.everything_sent()
    finally:
        server.stop()


# ---- nothing secret in any log line, even at debug level -------------------------------------------


@dataclass
class DebugStack:
    harness: Harness
    registry: Registry
    engine: DockerEngine
    redis_password: str
    wrong_password: str


@pytest.fixture(scope="module")
def debug_stack(docker_engine: DockerEngine, registry: Registry,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebugStack]:
    redis_password = "rp-" + secrets.token_urlsafe(18)
    wrong_password = "wrong-" + secrets.token_urlsafe(12)
    server = started(RedisServer(password=redis_password))
    try:
        with harness(server.url, docker_engine, registry, tmp_path_factory.mktemp("hardening"),
                     hosts={"build-1": registry.password, "build-bad": wrong_password},
                     log_level="DEBUG") as stack:
            yield DebugStack(stack, registry, docker_engine, redis_password, wrong_password)
    finally:
        server.stop()


def test_no_token_secret_or_password_in_any_log_line_at_debug_level(debug_stack: DebugStack) -> None:
    stack = debug_stack.harness
    build_image(debug_stack.engine.host, "centos7-hardening", "1.0", layers=1, seed="hardening")
    pushed = stack.queued("push centos7-hardening 1.0")
    failed_login = stack.queued("login --host build-bad")
    chat_password = "chat-" + secrets.token_urlsafe(12)
    refused = stack.command(f"login -u admin -p {chat_password}")
    assert "rotate" in refused["text"].lower() and "Queued" not in refused["text"]

    pushed_text = stack.final_message(pushed)
    assert pushed_text.startswith("succeeded"), pushed_text
    digest = debug_stack.registry.manifest_digest(f"{NAMESPACE}/centos7-hardening", "1.0")
    assert digest and digest in pushed_text
    failed_text = stack.final_message(failed_login)
    assert failed_text.startswith("failed") and "authentication" in failed_text
    time.sleep(1.0)  # let the relay's last log lines land

    serve_log, worker_logs = stack.serve.log_text(), [w.log_text() for w in stack.workers.values()]
    # Debug logging is really on in every process, or this test would prove little.
    assert " DEBUG " in serve_log and all(" DEBUG " in log for log in worker_logs)
    logs = stack.logs()
    for name, secret in [("bot token", stack.bot_token), ("signing secret", stack.signing_secret),
                         ("registry password", debug_stack.registry.password),
                         ("wrong registry password", debug_stack.wrong_password),
                         ("password typed in chat", chat_password),
                         ("Redis password", debug_stack.redis_password)]:
        assert leaked_forms(logs, secret) == [], f"the {name} is in a log"


def test_a_foreign_function_written_straight_into_redis_is_refused_and_logged(debug_stack: DebugStack,
                                                                              tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    connection = redis.Redis.from_url(debug_stack.harness.redis_url)
    try:
        queue = Queue(queue_name("build-1"), connection=connection, serializer=JSONSerializer)
        job = queue.enqueue_call(func="os.system", args=(f"touch {marker}",))
        deadline = time.monotonic() + 30
        while job.get_status(refresh=True) != JobStatus.FAILED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert Job.fetch(job.id, connection=connection, serializer=JSONSerializer).get_status() == JobStatus.FAILED
    finally:
        connection.close()
    assert not marker.exists()
    log = debug_stack.harness.workers["build-1"].log_text()
    assert f"refusing job {job.id}" in log and "'os.system' is not a regops task" in log


# ---- every decision and outcome in the audit trail and the audit channel ---------------------------


def test_every_decision_and_outcome_reaches_the_audit_trail_and_channel_without_secrets(
        debug_stack: DebugStack, tmp_path: Path) -> None:
    stack = debug_stack.harness
    chat_password = "chat-" + secrets.token_urlsafe(12)
    build_image(debug_stack.engine.host, "centos7-audited", "2.0", layers=1, seed="audited")
    started_at = time.time()
    pushed = stack.queued("push centos7-audited 2.0")
    failed = stack.queued("login --host build-bad")
    stack.command("push centos7-audited 2.0", user="U0NOBODY")
    stack.command("psuh centos7-audited 2.0")
    stack.command(f"login -u admin -p {chat_password}")
    stack.command("help")
    assert stack.final_message(pushed).startswith("succeeded")
    assert stack.final_message(failed).startswith("failed")

    result = regops_audit(stack.redis_url, tmp_path)
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stdout.splitlines()]

    def one(**match: str) -> dict:
        found = [e for e in entries if all(e[k] == v for k, v in match.items())]
        assert len(found) == 1, (match, entries)
        return found[0]

    queued = one(kind="command", decision="queued", job_id=pushed)
    assert (queued["user"], queued["channel"], queued["command"]) == ("U0ADMIN", "C0OPS", "push centos7-audited 2.0")
    assert queued["rule"]
    assert one(kind="command", decision="queued", job_id=failed)["command"] == "login --host build-bad"
    denied = one(kind="command", decision="denied", user="U0NOBODY", command="push centos7-audited 2.0")
    assert denied["rule"] and denied["job_id"] == ""
    one(kind="command", decision="invalid", command="psuh centos7-audited 2.0")
    refused = [e for e in entries if e["kind"] == "command" and e["decision"] == "refused"
               and e["command"].startswith("login")]
    assert refused and all("[redacted]" in e["command"] for e in refused)
    assert any(e["decision"] == "answered" and e["command"] == "help" for e in entries)
    succeeded = one(kind="job", job_id=pushed)
    assert succeeded["decision"] == "succeeded" and succeeded["user"] == "U0ADMIN"
    assert succeeded["outcome"].startswith("sha256:") and succeeded["outcome"] in stack.final_message(pushed)
    lost = one(kind="job", job_id=failed)
    assert lost["decision"] == "failed" and lost["outcome"].startswith("auth_failed")

    secrets_of_the_stack = [stack.bot_token, stack.signing_secret, debug_stack.registry.password,
                            debug_stack.wrong_password, debug_stack.redis_password, chat_password]
    for secret in secrets_of_the_stack:
        assert leaked_forms(result.stdout + result.stderr, secret) == []

    # The audit channel: each of this test's entries posted once, as its one line, and nothing that is
    # not in the trail.  (Entries made before the relay's group existed, at start-up, may be missing.)
    def line(e: dict) -> str:
        return format_line(AuditEntry(**{k: v for k, v in e.items() if k != "time"}))

    trail_lines = [line(e) for e in entries]
    mine = [line(e) for e in entries if e["at"] >= started_at]
    assert len(mine) >= 8

    def posted() -> list[str]:
        return [m["blocks"][0]["elements"][0]["text"] for (channel, _ts), m in stack.slack.messages.items()
                if channel == AUDIT_CHANNEL]

    stack.slack.wait_for(lambda: set(mine) <= set(posted()), 30, "the audit channel posts")
    time.sleep(1.0)  # a second post of anything would show up by now
    assert len(posted()) == len(set(posted())) and set(posted()) <= set(trail_lines)
    assert all(secret not in stack.slack.everything_sent() for secret in secrets_of_the_stack[2:])


# ---- the worker's log mask at start-up (the masker itself: tests/unit/test_secrets.py) ------------


def test_a_worker_that_cannot_start_logs_no_password(tmp_path: Path) -> None:
    # A worker whose Redis refuses it: the error path logs the URL's host, never its password.
    password = "rp-" + secrets.token_urlsafe(12)
    config = tmp_path / "regops.yaml"
    config.write_text("registries:\n  main:\n    server: r.example:5000\n    namespace: ns\n    username: u\n"
                      "    password_env: REGISTRY_PASSWORD\nhosts: [build-1]\n")
    with RedisServer(password="the-real-" + secrets.token_hex(8)) as server:
        result = subprocess.run(
            [sys.executable, "-m", "workers", "--host", "build-1", "--config", str(config), "--log-level", "DEBUG"],
            capture_output=True, text=True, timeout=60, check=False,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REGISTRY_PASSWORD": "reg-" + password,
                 "REDIS_URL": f"redis://:{password}@127.0.0.1:{server.port}/0"})
    assert result.returncode == 3, result.stderr
    assert "Redis" in result.stderr
    assert leaked_forms(result.stdout + result.stderr, password) == []
