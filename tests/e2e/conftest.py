"""The whole regops stack for end-to-end tests: serve + workers on real Redis, dockerd and registry,
with Slack replaced by the local stand-in."""

from __future__ import annotations

import json
import secrets
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.redis_scan import all_redis_values
from tests.support.services import DockerEngine, RedisServer, Registry
from tests.support.slack_standin import SlackStandIn, sign, slash_command_body
from tests.support.stack import ServeProcess, WorkerProcess

NAMESPACE = "com.example.namespace"


def write_config(directory: Path, registry: Registry) -> Path:
    path = directory / "regops.yaml"
    path.write_text(textwrap.dedent(f"""\
        registries:
          main:
            server: {registry.server}
            services_hostname: namespace.example.com
            username: {registry.username}
            password_env: REGISTRY_PASSWORD
        default_registry: main
        hosts: [build-1, build-bad]
        default_host: build-1
        notify_channel: C0DEPLOYS
        timeouts: {{push: 5m, pull: 5m, tag: 1m, login: 1m}}
        access:
          roles:
            admin: {{actions: ["*"]}}
            deployer: {{actions: [push, pull, tag, login], images: ["centos7-*"], tags: ["*"]}}
          grants:
            - {{role: admin, users: [U0ADMIN]}}
            - {{role: deployer, users: [U0DEV1]}}
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
        kwargs = self.redis.connection_pool.connection_kwargs
        raw = redis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))
        try:
            return all_redis_values(raw).decode(errors="replace")
        finally:
            raw.close()


@pytest.fixture(scope="package")
def stack(redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> Iterator[Stack]:
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-test-" + secrets.token_hex(12)
    wrong_password = "wrong-" + secrets.token_hex(8)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/3"
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    directory = Path(tempfile.mkdtemp(prefix="regops-e2e-"))
    config = str(write_config(directory, registry))
    with SlackStandIn(bot_token) as slack:
        common = {"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                  "SLACK_SIGNING_SECRET": signing_secret, "DOCKER_HOST": docker_engine.host}
        serve = ServeProcess(common, config)  # the bot never holds the registry password
        good = WorkerProcess({**common, "REGISTRY_PASSWORD": registry.password}, config, "build-1")
        bad = WorkerProcess({**common, "REGISTRY_PASSWORD": wrong_password}, config, "build-bad")
        started = []
        try:
            for process in (serve, good, bad):
                try:
                    process.start()
                except RuntimeError as exc:
                    pytest.fail(str(exc), pytrace=False)
                started.append(process)
            yield Stack(slack, serve, [good, bad], connection, registry, docker_engine, signing_secret,
                        bot_token, wrong_password)
        finally:
            for process in reversed(started):
                process.stop()
            connection.flushdb()
            connection.close()
