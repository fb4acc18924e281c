"""Registry notifications into a running `regops serve`: a real Distribution registry sends them (Redis DB 2).

The registry's ``notifications`` point at ``POST /registry/events`` with the registry's bearer token;
what it reports ends up, each relevant event once, on the registry-events stream, and nothing
else gets in: a wrong token, a body that is no envelope, an oversize one.
"""

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
import requests

from tests.support.redis_scan import all_redis_values
from tests.support.registry_images import DOCKER_MANIFEST, ImageWriter, basic
from tests.support.services import RedisServer, Registry
from tests.support.slack_standin import SlackStandIn
from tests.support.socket_standin import SocketModeStandIn
from tests.support.stack import ServeProcess
from tests.support.waiting import wait_until
from workers.kernel.keys import REGISTRY_EVENTS_LAST_KEY, REGISTRY_EVENTS_STREAM

DB = 2
NAMESPACE = "com.example.namespace"
EVENTS_TYPE = "application/vnd.docker.distribution.events.v1+json"
RECORDED = Path(__file__).parents[1] / "support" / "registry_envelopes"


@dataclass
class Intake:
    serve: ServeProcess
    registry: Registry
    redis: redis.Redis
    token: str
    config: Path

    @property
    def url(self) -> str:
        return f"{self.serve.url}/registry/events"

    def entries(self, repository: str) -> list[dict[str, str]]:
        return [fields for _, fields in self.redis.xrange(REGISTRY_EVENTS_STREAM)
                if fields.get("repository") == f"{NAMESPACE}/{repository}"]

    def settled_entries(self, repository: str, count: int, timeout: float = 30.0) -> list[dict[str, str]]:
        """The repository's entries once there are ``count``, and still ``count`` a moment later (no extra)."""
        wait_until(lambda: len(self.entries(repository)) >= count, timeout,
                   f"{count} registry event(s) of {repository}", lambda: f"; serve log:\n{self.serve.log_tail(40)}")
        time.sleep(1.5)  # the registry sends its envelopes one after another, a few ms apart
        return self.entries(repository)

    def post(self, body: bytes, *, token: str | None = None, content_type: str = EVENTS_TYPE) -> tuple[int, dict]:
        sent = {"Content-Type": content_type}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url, data=body, headers=sent, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else {}


def config_text(registry: Registry) -> str:
    return textwrap.dedent(f"""\
        registries:
          main:
            server: {registry.server}
            services_hostname: namespace.example.com
            username: {registry.username}
            password_env: REGISTRY_PASSWORD
            events_token_env: REGISTRY_EVENTS_TOKEN
        default_registry: main
        hosts: [build-1]
        notifications:
          routes:
            - {{channel: C0RELEASES, images: ["**"], events: [push, delete]}}
        access:
          roles:
            admin: {{actions: ["*"]}}
          grants:
            - {{role: admin, users: [U0ADMIN]}}
        """)


@pytest.fixture(scope="module")
def intake(redis_server: RedisServer) -> Iterator[Intake]:
    token = "registry-events-" + secrets.token_hex(16)
    bot_token = "xoxb-intake-" + secrets.token_hex(12)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    config = Path(tempfile.mkdtemp(prefix="regops-e2e-intake-")) / "regops.yaml"
    with SlackStandIn(bot_token) as slack:
        serve = ServeProcess({"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                              "SLACK_SIGNING_SECRET": secrets.token_hex(16), "REGISTRY_EVENTS_TOKEN": token},
                             str(config))
        endpoint = {"name": "regops", "url": f"{serve.url}/registry/events",
                    "headers": {"Authorization": [f"Bearer {token}"]}, "timeout": "2s", "threshold": 2,
                    "backoff": "1s", "ignore": {"actions": ["pull", "mount"]}}
        registry = Registry(notifications=[endpoint])
        try:
            registry.start()
            config.write_text(config_text(registry))
            serve.start()
        except RuntimeError as exc:
            serve.stop()
            registry.stop()
            pytest.fail(str(exc), pytrace=False)
        try:
            yield Intake(serve, registry, connection, token, config)
        finally:
            serve.stop()
            registry.stop()
            connection.flushdb()
            connection.close()


def writer(intake: Intake) -> ImageWriter:
    return ImageWriter(intake.registry.base_url, basic(intake.registry.username, intake.registry.password))


def test_a_push_through_the_registry_api_is_one_entry_with_the_events_fields(intake: Intake) -> None:
    with writer(intake) as images:
        image = images.image(f"{NAMESPACE}/pushed", "1.0", media_type=DOCKER_MANIFEST)
    [entry] = intake.settled_entries("pushed", 1)
    assert entry["registry"] == "main" and entry["action"] == "push" and entry["tag"] == "1.0"
    assert entry["digest"] == image.digest and entry["media_type"] == DOCKER_MANIFEST
    assert entry["actor"] == intake.registry.username and entry["address"].startswith("127.0.0.1:")
    assert abs(float(entry["at"]) - time.time()) < 60 and len(entry["id"]) == 36
    assert float(intake.redis.hget(REGISTRY_EVENTS_LAST_KEY, "main") or 0) >= float(entry["at"]) - 1
    # The blob pushes before the manifest were envelopes too: each was ignored, none stored.
    assert "registry events from main: 0 taken, 0 duplicate, 1 ignored" in intake.serve.log_text()
    assert "registry events from main: 1 taken, 0 duplicate, 0 ignored" in intake.serve.log_text()


def test_a_manifest_deleted_with_two_tags_is_a_manifest_event_and_one_event_per_tag(intake: Intake) -> None:
    with writer(intake) as images:
        image = images.image(f"{NAMESPACE}/deleted", "1.0", media_type=DOCKER_MANIFEST)
        images.put_manifest(f"{NAMESPACE}/deleted", "1.1", image.manifest, image.media_type)
        intake.settled_entries("deleted", 2)
    authorization = basic(intake.registry.username, intake.registry.password)("")
    answer = requests.delete(f"{intake.registry.base_url}/v2/{NAMESPACE}/deleted/manifests/{image.digest}",
                             headers={"Authorization": authorization}, timeout=10)
    assert answer.status_code == 202
    entries = intake.settled_entries("deleted", 5)
    deletes = [(e["action"], e.get("tag"), e.get("digest")) for e in entries[2:]]
    assert deletes[0] == ("delete", None, image.digest)
    assert sorted(deletes[1:]) == [("delete", "1.0", None), ("delete", "1.1", None)]


def test_while_serve_is_down_the_registry_retries_and_each_event_is_stored_once(intake: Intake) -> None:
    intake.serve.stop()
    try:
        with writer(intake) as images:
            image = images.image(f"{NAMESPACE}/retried", "2.0", media_type=DOCKER_MANIFEST, layers=1)
        time.sleep(3)  # the registry has failed to deliver, and backs off
        assert intake.entries("retried") == []
    finally:
        intake.serve.start()
    [entry] = intake.settled_entries("retried", 1, timeout=60)
    assert entry["digest"] == image.digest and entry["tag"] == "2.0"


def test_the_same_envelope_delivered_again_is_stored_once(intake: Intake) -> None:
    fixture = json.loads((RECORDED / "push_api.json").read_text())
    event = fixture["body"]["events"][0]
    event["id"] = f"replayed-{secrets.token_hex(8)}"
    event["target"]["repository"] = f"{NAMESPACE}/replayed"
    body = json.dumps({"events": [event]}).encode()
    assert intake.post(body, token=intake.token) == (200, {"taken": 1, "duplicate": 0, "ignored": 0})
    assert intake.post(body, token=intake.token) == (200, {"taken": 0, "duplicate": 1, "ignored": 0})
    assert intake.post(body, token=intake.token, content_type="application/json") == (
        200, {"taken": 0, "duplicate": 1, "ignored": 0})
    assert len(intake.entries("replayed")) == 1


def _snapshot(intake: Intake) -> tuple[int, dict[str, str], int]:
    return (intake.redis.xlen(REGISTRY_EVENTS_STREAM), intake.redis.hgetall(REGISTRY_EVENTS_LAST_KEY),
            intake.redis.dbsize())


def _envelope(repository: str) -> bytes:
    event = json.loads((RECORDED / "push_api.json").read_text())["body"]["events"][0]
    event["id"] = secrets.token_hex(8)
    event["target"]["repository"] = f"{NAMESPACE}/{repository}"
    return json.dumps({"events": [event]}).encode()


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789abcdef", "registry-events-"])
def test_a_missing_or_wrong_token_is_401_and_nothing_is_stored(intake: Intake, token: str | None) -> None:
    before = _snapshot(intake)
    status, answer = intake.post(_envelope("intruder"), token=token)
    assert status == 401 and answer == {"error": "a registry's bearer token is required"}
    assert _snapshot(intake) == before and intake.entries("intruder") == []


def test_malformed_bodies_are_4xx_and_nothing_is_stored(intake: Intake) -> None:
    before = _snapshot(intake)
    cases = [
        (b"not json at all", EVENTS_TYPE, 400, "the body is not JSON"),
        (b'{"notifications": []}', EVENTS_TYPE, 400, "the body has no `events` list"),
        (b'{"events": [{"id": "x1", "action": "push", "target": {}}]}', "application/json", 400,
         "events[0].target.repository is missing or not a string"),
        (_envelope("wrong-type"), "text/plain", 415, None),
        (_envelope("wrong-type") + b" " * 70_000, EVENTS_TYPE, 413, None),
    ]
    for body, content_type, status, reason in cases:
        got, answer = intake.post(body, token=intake.token, content_type=content_type)
        assert got == status, (body[:40], answer)
        if reason:
            assert answer == {"error": reason}
    assert _snapshot(intake) == before
    get = urllib.request.Request(intake.url, headers={"Authorization": f"Bearer {intake.token}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(get, timeout=10)
    assert info.value.code == 405


def test_no_token_in_the_serve_log_or_in_redis(intake: Intake) -> None:
    intake.post(_envelope("logged"), token=intake.token)
    intake.post(_envelope("logged"), token=intake.token + "x")
    log = intake.serve.log_text()
    assert "registry events from main:" in log
    assert intake.token not in log and intake.registry.password not in log
    raw = redis.Redis(connection_pool=redis.ConnectionPool(**{
        **intake.redis.connection_pool.connection_kwargs, "decode_responses": False}))
    try:
        dump = all_redis_values(raw)
    finally:
        raw.close()
    assert intake.token.encode() not in dump


def test_in_socket_mode_the_same_port_takes_registry_events(intake: Intake, redis_server: RedisServer) -> None:
    bot_token = "xoxb-intake-socket-" + secrets.token_hex(8)
    app_token = "xapp-1-A0REGOPS-" + secrets.token_hex(12)
    with SocketModeStandIn() as socket, SlackStandIn(bot_token, app_token=app_token, socket=socket) as slack:
        serve = ServeProcess({"REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/{DB}", "SLACK_API_URL": slack.api_url,
                              "SLACK_BOT_TOKEN": bot_token, "SLACK_APP_TOKEN": app_token,
                              "REGISTRY_EVENTS_TOKEN": intake.token}, str(intake.config))
        try:
            serve.start()
            socket_intake = Intake(serve, intake.registry, intake.redis, intake.token, intake.config)
            assert socket_intake.post(_envelope("over-socket-mode"), token=intake.token) == (
                200, {"taken": 1, "duplicate": 0, "ignored": 0})
            assert socket_intake.post(_envelope("over-socket-mode"), token="wrong-" + intake.token)[0] == 401
        finally:
            serve.stop()
    assert len(intake.entries("over-socket-mode")) == 1
