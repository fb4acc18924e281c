"""End to end: a real Distribution registry's notifications reach a real `regops serve`, which announces each
change once in every routed channel (Slack stand-in), whoever made it."""

from __future__ import annotations

import itertools
import secrets
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
import requests

from tests.e2e.conftest import NAMESPACE, job_id_of
from tests.support.registry_images import ImageWriter, basic
from tests.support.services import DockerEngine, RedisServer, Registry, build_image
from tests.support.slack_standin import SlackStandIn, sign, slash_command_body
from tests.support.stack import ServeProcess, WorkerProcess
from tests.support.waiting import wait_until
from workers.kernel.history import read_history
from workers.kernel.keys import REGISTRY_EVENTS_STREAM, outbox_key

DB = 8
IMAGE = "centos7-elasticsearch"
CHANNELS = ("C0SEARCH", "C0RELEASES", "C0DEPLOYS")


@dataclass
class EventsStack:
    slack: SlackStandIn
    serve: ServeProcess
    worker: WorkerProcess
    registry: Registry
    engine: DockerEngine
    redis: redis.Redis
    signing_secret: str

    @property
    def repository(self) -> str:
        return f"{NAMESPACE}/{IMAGE}"

    def reference(self, tag: str) -> str:
        return f"{self.registry.server}/{self.repository}:{tag}"

    def messages(self, channel: str, needle: str) -> list[dict[str, Any]]:
        """The channel's messages whose fallback text names ``needle``."""
        return [m for (chan, _ts), m in list(self.slack.messages.items())
                if chan == channel and needle in (m.get("text") or "")]

    def announced(self, channel: str, needle: str, timeout: float = 60.0) -> dict[str, Any]:
        found = self.slack.wait_for(lambda: self.messages(channel, needle), timeout,
                                    f"an announcement naming {needle} in {channel}")
        return found[0]

    def docker_push(self, tag: str, seed: str) -> str:
        """Push as the docker CLI does (through dockerd, not regops); returns the manifest digest."""
        build_image(self.engine.host, f"{self.registry.server}/{self.repository}", tag, layers=1,
                    layer_size=4096, seed=seed)
        api = docker.APIClient(base_url=self.engine.host, timeout=120)
        try:
            credentials = {"username": self.registry.username, "password": self.registry.password,
                           "serveraddress": self.registry.server}
            for line in api.push(f"{self.registry.server}/{self.repository}", tag=tag, auth_config=credentials,
                                 stream=True, decode=True):
                assert "errorDetail" not in line, line
        finally:
            api.close()
        digest = self.registry.manifest_digest(self.repository, tag)
        assert digest is not None
        return digest

    def command(self, text: str, user: str = "U0DEV1", channel: str = "C0OPS") -> dict[str, Any]:
        body = slash_command_body(text, user_id=user, channel_id=channel,
                                  response_url=self.slack.response_url(f"r{time.time_ns()}"))
        answer = requests.post(f"{self.serve.url}/slack/events", data=body.encode(),
                               headers=sign(self.signing_secret, body), timeout=10)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def config_text(registry: Registry) -> str:
    return textwrap.dedent(f"""\
        registries:
          main:
            server: "{registry.server}"
            services_hostname: namespace.example.com
            username: "{registry.username}"
            password_env: REGISTRY_PASSWORD
            events_token_env: REGISTRY_EVENTS_TOKEN
        default_registry: main
        hosts: [build-1]
        default_host: build-1
        notify_channel: C0DEPLOYS
        notifications:
          routes:
            - {{channel: C0SEARCH, images: ["{IMAGE}"], tags: ["*"], events: [push, delete]}}
            - {{channel: C0RELEASES, images: ["*"], tags: ["v*", "latest"]}}
            - {{channel: C0SEARCH, images: ["centos7-*"], tags: ["v*"]}}
        timeouts: {{push: 5m, pull: 5m, tag: 1m, login: 1m}}
        access:
          roles:
            admin: {{actions: ["*"]}}
            deployer: {{actions: [push, pull, tag, login], images: ["centos7-*"], tags: ["*"]}}
          grants:
            - {{role: admin, users: [U0ADMIN]}}
            - {{role: deployer, users: [U0DEV1]}}
        """)


def serve_on(env: dict[str, str], config: str, port: int) -> ServeProcess:
    """`regops serve` on ``port`` (the registry's notifications endpoint names it)."""
    process = ServeProcess(env, config, extra=["--port", str(port)])
    process.port = port
    return process


@pytest.fixture(scope="module")
def events_stack(redis_server: RedisServer, docker_engine: DockerEngine) -> Iterator[EventsStack]:
    token = secrets.token_hex(16)
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-test-" + secrets.token_hex(12)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    config = Path(tempfile.mkdtemp(prefix="regops-e2e-events-")) / "regops.yaml"
    with SlackStandIn(bot_token) as slack:
        common = {"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                  "SLACK_SIGNING_SECRET": signing_secret, "DOCKER_HOST": docker_engine.host}
        serve = ServeProcess({**common, "REGISTRY_EVENTS_TOKEN": token}, str(config))
        endpoint = {"name": "regops", "url": f"{serve.url}/registry/events",
                    "headers": {"Authorization": [f"Bearer {token}"]}, "timeout": "2s", "threshold": 3,
                    "backoff": "1s", "ignore": {"actions": ["pull", "mount"]}}
        with Registry(notifications=[endpoint]) as registry:
            config.write_text(config_text(registry))
            worker = WorkerProcess({**common, "REGISTRY_PASSWORD": registry.password}, str(config), "build-1")
            started: list[ServeProcess | WorkerProcess] = []
            try:
                for process in (serve, worker):
                    process.start()
                    started.append(process)
                stack = EventsStack(slack, serve, worker, registry, docker_engine, connection, signing_secret)
                yield stack
                started.append(stack.serve)  # a test may have replaced serve (the restart test): stop that one too
            finally:
                for process in reversed(started):
                    process.stop()
                connection.flushdb()
                connection.close()


def test_a_docker_push_is_announced_as_a_new_tag_then_as_moved(events_stack: EventsStack) -> None:
    stack = events_stack
    first = stack.docker_push("latest", "first")
    message = stack.announced("C0SEARCH", first)
    assert "new tag" in message["text"] and stack.reference("latest") in message["text"]
    assert stack.registry.username in message["text"]  # the registry account, not a Slack user
    for channel in ("C0RELEASES", "C0DEPLOYS"):
        stack.announced(channel, first)

    second = stack.docker_push("latest", "second")
    moved = stack.announced("C0SEARCH", second)
    assert f"moved from `{first}` to `{second}`" in moved["text"]
    time.sleep(2)
    for channel in CHANNELS:
        assert len([m for m in stack.messages(channel, first) if second not in m["text"]]) == 1, channel
        assert len(stack.messages(channel, second)) == 1, channel


def test_a_push_through_regops_is_announced_once_per_channel_naming_the_requester(
        events_stack: EventsStack) -> None:
    stack = events_stack
    build_image(stack.engine.host, IMAGE, "v1", layers=1, layer_size=4096, seed="regops-v1")
    job_id = job_id_of(stack.command(f"push {IMAGE} v1"))
    digest = stack.slack.wait_for(lambda: stack.registry.manifest_digest(stack.repository, "v1"), 120,
                                  "the push to land")
    for channel in CHANNELS:  # C0SEARCH has two routes taking v1: still one message
        message = stack.announced(channel, digest)
        assert "<@U0DEV1>" in message["text"] and job_id in message["text"]
    # The job's message is final, and nothing more comes after the event and the job's success.
    stack.slack.wait_for(lambda: any(f"job {job_id}" in (m.get("text") or "") and
                                     (m.get("text") or "").startswith("succeeded")
                                     for m in stack.slack.messages.values()), 60, "the job's final message")
    time.sleep(3)
    for channel in CHANNELS:
        assert len(stack.messages(channel, digest)) == 1, channel
    # One history entry for the push, the job's, whichever of the event and the success came first.
    (change,) = read_history(stack.redis, stack.reference("v1"))
    assert (change.digest, change.who, change.job_id, change.how) == (digest, "U0DEV1", job_id, "push")


def test_a_delete_is_announced_once_with_its_tags(events_stack: EventsStack) -> None:
    stack = events_stack
    digest = stack.docker_push("to-delete", "deleted")
    stack.announced("C0SEARCH", digest)
    answer = requests.delete(f"{stack.registry.base_url}/v2/{stack.repository}/manifests/{digest}",
                             auth=(stack.registry.username, stack.registry.password), timeout=10)
    assert answer.status_code == 202, answer.text
    gone = stack.slack.wait_for(lambda: [m for m in stack.messages("C0SEARCH", digest)
                                         if "deleted" in (m.get("text") or "")], 60, "the delete announcement")
    assert "to-delete" in gone[0]["text"]
    assert [c.digest for c in read_history(stack.redis, stack.reference("to-delete"))] == [None, digest]
    time.sleep(3)  # the tag's own delete event follows the manifest's: it adds nothing
    assert len([m for m in stack.messages("C0SEARCH", digest) if "deleted" in (m.get("text") or "")]) == 1
    assert not [m for m in stack.messages("C0DEPLOYS", digest) if "deleted" in (m.get("text") or "")]


def test_a_serve_restart_between_the_2xx_and_the_slack_post_still_announces_once(
        events_stack: EventsStack) -> None:
    stack = events_stack
    stack.slack.outage = lambda method: ("5xx", 503) if method == "chat.postMessage" else None
    try:
        digest = stack.docker_push("restart", "restart")
        # The event was taken (answered 2xx, then turned into an outbox entry), but Slack refuses the post.
        wait_until(lambda: any(digest in raw for raw in stack.redis.lrange(outbox_key("C0SEARCH"), 0, -1)), 60,
                   "the event to reach the outbox", lambda: str(stack.redis.xlen(REGISTRY_EVENTS_STREAM)))
        port, env, config = stack.serve.port, dict(stack.serve._env), stack.serve._args[1]
        stack.serve.kill()
        stack.serve.stop()
    finally:
        stack.slack.outage = None
    replacement = serve_on(env, config, port)
    replacement.start()
    stack.serve = replacement
    for channel in ("C0SEARCH", "C0DEPLOYS"):  # each after its own backoff from the refused posts
        stack.announced(channel, digest)
    time.sleep(3)
    assert len(stack.messages("C0SEARCH", digest)) == 1
    assert len(stack.messages("C0DEPLOYS", digest)) == 1


def test_forty_pushes_in_a_few_seconds_arrive_coalesced_at_about_one_message_a_second_none_missing(
        events_stack: EventsStack) -> None:
    """A CI job pushing 40 tags through the registry API: Slack's per-channel limit holds, every tag shows."""
    stack = events_stack
    stack.slack.channel_interval = 1.0  # the stand-in answers 429 past one message a second per channel
    tags = [f"ci-{n:02d}" for n in range(40)]
    try:
        with ImageWriter(stack.registry.base_url, basic(stack.registry.username, stack.registry.password)) as writer:
            image = writer.image(stack.repository, tags[0], layers=1, layer_size=512)
            started = time.time()
            for tag in tags[1:]:
                writer.put_manifest(stack.repository, tag, image.manifest, image.media_type)
        pushed = time.time() - started

        def shown() -> set[str]:
            texts = [str(m.get("blocks")) for (chan, _ts), m in list(stack.slack.messages.items()) if chan == "C0SEARCH"]
            return {tag for tag in tags if any(f"{stack.reference(tag)}`" in text or f":{tag}`" in text
                                               for text in texts)}

        stack.slack.wait_for(lambda: shown() == set(tags), 60, "all 40 tags announced in C0SEARCH")
    finally:
        stack.slack.channel_interval = None
    posts = [c for c in stack.slack.calls_to("chat.postMessage")
             if c.params.get("channel") == "C0SEARCH" and c.at >= started - 1 and c.ok]
    assert len(posts) < 20  # coalesced: far fewer messages than pushes
    times = sorted(c.at for c in posts)
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(times)), times  # about one a second
    assert pushed < 20
