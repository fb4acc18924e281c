"""The whole regops stack for end-to-end tests: serve + workers on real Redis, dockerd and registry,
with Slack replaced by the local stand-in."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from tests.support.redis_scan import all_redis_values
from tests.support.services import DockerEngine, RedisServer, Registry
from tests.support.slack_standin import SlackStandIn, block_actions_body, sign, slash_command_body
from tests.support.stack import ServeProcess, WorkerProcess
from workers.kernel.audit import AuditEntry
from workers.kernel.keys import AUDIT_STREAM

NAMESPACE = "com.example.namespace"
JOB_ID = re.compile(r"(?:job|request) `([0-9a-f]{12})`")


def job_id_of(body: dict) -> str:
    """The job id an acknowledgement names ("… as job `id`" or "… the request `id` …")."""
    match = JOB_ID.search(body.get("text", ""))
    assert match, f"no job id in the ack: {body!r}"
    return match.group(1)


def registries_yaml(registry: Registry) -> str:
    """The `registries:` section for the test registry, the password read from REGISTRY_PASSWORD."""
    return (f"registries:\n  main:\n    server: {registry.server}\n"
            f"    services_hostname: namespace.example.com\n    username: {registry.username}\n"
            f"    password_env: REGISTRY_PASSWORD\n")


def write_config(directory: Path, registry: Registry) -> Path:
    path = directory / "regops.yaml"
    path.write_text(registries_yaml(registry) + textwrap.dedent("""\
        default_registry: main
        hosts: [build-1, build-bad]
        default_host: build-1
        notify_channel: C0DEPLOYS
        timeouts: {push: 5m, pull: 5m, tag: 1m, login: 1m}
        access:
          roles:
            admin: {actions: ["*"]}
            deployer: {actions: [push, pull, tag, login], images: ["centos7-*"], tags: ["*"]}
          grants:
            - {role: admin, users: [U0ADMIN]}
            - {role: deployer, users: [U0DEV1]}
        """))
    return path


@dataclass
class Stack:
    slack: SlackStandIn
    serve: ServeProcess
    workers: list[WorkerProcess]
    redis: redis.Redis
    registry: Registry
    engine: DockerEngine
    signing_secret: str
    bot_token: str
    wrong_password: str

    def command(self, text: str, *, user: str = "U0DEV1", channel: str = "C0OPS",
                response_url: str | None = None, secret: str | None = None,
                timestamp: int | None = None) -> tuple[int, dict]:
        """POST a signed slash command; return (status, JSON body or {})."""
        body = slash_command_body(text, user_id=user, channel_id=channel,
                                  response_url=response_url or self.slack.response_url(f"r{time.time_ns()}"))
        headers = sign(secret or self.signing_secret, body, timestamp)
        request = urllib.request.Request(f"{self.serve.url}/slack/events", data=body.encode(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    def post(self, body: str, secret: str | None = None) -> int:
        """POST a signed form body to /slack/events; return the HTTP status."""
        request = urllib.request.Request(f"{self.serve.url}/slack/events", data=body.encode(),
                                         headers=sign(secret or self.signing_secret, body), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def click(self, job_id: str, user: str, *, approve: bool = True, channel: str = "C0OPS",
              message_ts: str | None = None) -> int:
        """A signed Approve/Reject click on the job's approval message."""
        ts = message_ts or self.message_of(job_id, channel)[0]
        body = block_actions_body(user_id=user, channel_id=channel, value=job_id, message_ts=ts,
                                  action_id="regops_approve" if approve else "regops_reject")
        return self.post(body)

    def message_of(self, job_id: str, channel: str = "C0OPS") -> tuple[str, dict]:
        """(ts, message) of the job's channel message, waiting for it to be posted."""
        def find() -> tuple[str, dict] | None:
            for (chan, ts), message in self.slack.messages.items():
                if chan == channel and f"job {job_id}" in (message.get("text") or ""):
                    return ts, message
            return None
        return self.slack.wait_for(find, 30, f"the message of job {job_id}")

    def final_message(self, job_id: str, channel: str = "C0OPS", timeout: float = 120.0) -> dict:
        """The job's channel message once it reads succeeded or failed."""
        def find() -> dict | None:
            for (chan, _ts), message in self.slack.messages.items():
                text = message.get("text") or ""
                if chan == channel and f"job {job_id}" in text and text.startswith(("succeeded", "failed")):
                    return message
            return None
        return self.slack.wait_for(find, timeout, f"the final message of job {job_id}")

    def job_keys(self) -> list[str]:
        return sorted(self.redis.scan_iter("regops:job:*"))

    def queue_lengths(self) -> dict[str, int]:
        return {host: self.redis.llen(f"rq:queue:regops.{host}") for host in ("build-1", "build-bad")}

    def logs(self) -> str:
        return "\n".join(p.log_text() for p in [self.serve, *self.workers])

    def redis_dump(self) -> str:
        """Every key and value in the stack's database (rq's job data inflated), for secret scans."""
        raw = redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=self.redis.connection_pool.connection_class,
            **{**self.redis.connection_pool.connection_kwargs, "decode_responses": False}))
        try:
            return all_redis_values(raw).decode(errors="replace")
        finally:
            raw.close()


@contextlib.contextmanager
def running_stack(redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry, *, db: int,
                  config_text: str, hosts: Mapping[str, str] | None = None,
                  usergroups: Mapping[str, list[str]] | None = None,
                  worker_env: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """serve + one worker per host (host name → the registry password that worker holds).

    ``worker_env`` adds variables to every worker's environment (another registry's password, say).
    """
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-test-" + secrets.token_hex(12)
    wrong_password = "wrong-" + secrets.token_hex(8)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{db}"
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    directory = Path(tempfile.mkdtemp(prefix="regops-e2e-"))
    config = directory / "regops.yaml"
    config.write_text(config_text)
    with SlackStandIn(bot_token) as slack:
        slack.usergroups.update(usergroups or {})
        common = {"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                  "SLACK_SIGNING_SECRET": signing_secret, "DOCKER_HOST": docker_engine.host}
        serve = ServeProcess(common, str(config))  # the bot never holds the registry password
        workers = [
            WorkerProcess({**common, **(worker_env or {}),
                           "REGISTRY_PASSWORD": wrong_password if password is None else password},
                          str(config), host)
            for host, password in (hosts or {"build-1": registry.password}).items()
        ]
        started: list[ServeProcess | WorkerProcess] = []
        try:
            for process in (serve, *workers):
                try:
                    process.start()
                except RuntimeError as exc:
                    pytest.fail(str(exc), pytrace=False)
                started.append(process)
            yield Stack(slack, serve, workers, connection, registry, docker_engine, signing_secret,
                        bot_token, wrong_password)
        finally:
            for process in reversed(started):
                process.stop()
            connection.flushdb()
            connection.close()


@dataclass
class ServeBot:
    """A real `regops serve` alone (no worker, no registry) with the Slack stand-in, on its own Redis database:
    for what is decided within the acknowledgement (subscriptions, guard-rail refusals)."""

    serve: ServeProcess
    slack: SlackStandIn
    redis: redis.Redis
    signing_secret: str

    def answer(self, text: str, *, user: str, channel: str = "C0OPS") -> dict:
        """POST a signed slash command; its acknowledgement, which must be a 200 and ephemeral."""
        body = slash_command_body(text, user_id=user, channel_id=channel,
                                  response_url=self.slack.response_url(f"r{time.time_ns()}"))
        request = urllib.request.Request(f"{self.serve.url}/slack/events", data=body.encode(),
                                         headers=sign(self.signing_secret, body), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
                answer: dict = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{text!r} answered HTTP {exc.code}")
        assert answer.get("response_type") == "ephemeral", answer
        return answer

    def audit(self) -> list[AuditEntry]:
        return [AuditEntry.from_fields(fields) for _id, fields in self.redis.xrange(AUDIT_STREAM)]


B = TypeVar("B", bound=ServeBot)


@contextlib.contextmanager
def serve_bot(redis_server: RedisServer, *, db: int, config_text: str, kind: type[B]) -> Iterator[B]:
    """Start :class:`ServeBot` (or the test module's subclass ``kind``) on database ``db``; stop it after."""
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-test-" + secrets.token_hex(12)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{db}"
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    config = Path(tempfile.mkdtemp(prefix="regops-e2e-serve-")) / "regops.yaml"
    config.write_text(config_text)
    with SlackStandIn(bot_token) as slack:
        serve = ServeProcess({"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                              "SLACK_SIGNING_SECRET": signing_secret}, str(config))
        try:
            serve.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield kind(serve, slack, connection, signing_secret)
        finally:
            serve.stop()
            connection.flushdb()
            connection.close()


@pytest.fixture(scope="package")
def stack(redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> Iterator[Stack]:
    directory = Path(tempfile.mkdtemp(prefix="regops-e2e-config-"))
    config_text = write_config(directory, registry).read_text()
    # build-bad's worker holds a wrong registry password (None → the stack's wrong password).
    with running_stack(redis_server, docker_engine, registry, db=3, config_text=config_text,
                       hosts={"build-1": registry.password, "build-bad": None}) as running:
        yield running
