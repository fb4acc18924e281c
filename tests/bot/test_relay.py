"""The relay on real Redis against the Slack stand-in: one message per job, edited in place."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from bot.core.announcements import Announcement
from bot.core.queueing import JobQueue, Origin
from bot.core.routing import Router
from bot.slack.client import ResponseUrlError, build_web_client, post_response_url
from bot.slack.relay import GROUP, Relay
from tests.bot.conftest import BOT_TOKEN
from tests.support.services import free_port
from tests.support.slack_standin import SlackStandIn
from workers.kernel.config import parse_config
from workers.kernel.config.model import NotificationRoute
from workers.kernel.history import TagChange, record_changes
from workers.kernel.jobs import EventType, JobEvent, JobRecord, JobSpec, state_update
from workers.kernel.keys import EVENTS_STREAM, OUTBOX_DUE_KEY, RELAY_DUE_KEY, job_key, outbox_key, slack_message_key
from workers.kernel.secrets import Secret

REF = "127.0.0.1:5000/com.example.namespace/centos7-app:1.0"
DIGEST = "sha256:" + "cd" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_relay(connection: redis.Redis, slack: SlackStandIn, clock: Clock, consumer: str = "relay-1",
               notify: str | None = "C0DEPLOYS", claim_idle_ms: int = 30_000) -> Relay:
    client = build_web_client(Secret(BOT_TOKEN), slack.api_url)
    relay = Relay(connection, client, consumer=consumer, respond=post_response_url, notify_channel=notify,
                  clock=clock, claim_idle_ms=claim_idle_ms)
    relay.ensure_group()
    return relay


def queue_job(connection: redis.Redis, job_id: str, *, channel: str = "C0OPS", frontend: str = "slack",
              response_url: str | None = None) -> None:
    record = JobRecord(job_id=job_id, action="push", registry="main", host="build-1", requester="U0DEV1",
                       reference=REF, source="centos7-app:1.0", queued_at=time.time())
    spec = JobSpec(job_id=job_id, action="push", registry="main", server="127.0.0.1:5000", reference=REF,
                   source="centos7-app:1.0", requester="U0DEV1")
    JobQueue(_bytes(connection)).enqueue(record, spec, Origin(frontend, "U0DEV1", channel, response_url), timeout=60)


def _bytes(connection: redis.Redis) -> redis.Redis:
    kwargs = connection.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))


def emit(connection: redis.Redis, job_id: str, kind: EventType, **fields: object) -> None:
    event = JobEvent(job_id=job_id, type=kind.value, at=time.time(), **fields)  # type: ignore[arg-type]
    pipe = connection.pipeline()
    pipe.hset(job_key(job_id), mapping=state_update(event))
    pipe.xadd(EVENTS_STREAM, event.to_fields())
    pipe.execute()


def announced(connection: redis.Redis, channel: str) -> list[Announcement]:
    """What waits in ``channel``'s outbox for the announcer."""
    return [Announcement.from_json(raw) for raw in connection.lrange(outbox_key(channel), 0, -1)]


def job_posts(slack: SlackStandIn, job_id: str, channel: str = "C0OPS") -> list:
    return [c for c in slack.calls_to("chat.postMessage")
            if c.params["channel"] == channel and f"job {job_id}" in c.params["text"]]


def test_one_message_per_job_edited_in_place_and_progress_throttled(text_redis: redis.Redis,
                                                                    slack: SlackStandIn) -> None:
    clock = Clock()
    relay = make_relay(text_redis, slack, clock)
    queue_job(text_redis, "job000000001")
    relay.step()
    assert len(job_posts(slack, "job000000001")) == 1
    assert job_posts(slack, "job000000001")[0].params["text"].startswith("queued")

    emit(text_redis, "job000000001", EventType.STARTED)
    emit(text_redis, "job000000001", EventType.PROGRESS, progress=40)
    clock.now += 1.0
    relay.step()
    assert slack.calls_to("chat.update") == []  # within 3 s of the post: throttled
    assert text_redis.zscore(RELAY_DUE_KEY, "job000000001") == pytest.approx(clock.now - 1.0 + 3.0)

    clock.now += 2.5
    relay.step()  # the due update runs once the 3 s have passed
    updates = slack.calls_to("chat.update")
    assert len(updates) == 1 and updates[0].params["text"].startswith("running")
    assert "40%" in updates[0].params["text"]

    emit(text_redis, "job000000001", EventType.SUCCEEDED, digest=DIGEST)
    clock.now += 0.1
    relay.step()  # the outcome does not wait for the throttle
    final = slack.calls_to("chat.update")[-1]
    assert final.params["text"].startswith("succeeded") and DIGEST in final.params["text"]
    assert final.params["ts"] == job_posts(slack, "job000000001")[0].params.get("ts", final.params["ts"])
    assert len(job_posts(slack, "job000000001")) == 1
    notices = announced(text_redis, "C0DEPLOYS")
    assert len(notices) == 1 and notices[0].digest == DIGEST and notices[0].references() == [REF]
    assert notices[0].who == "U0DEV1" and notices[0].by_slack and notices[0].job_id == "job000000001"
    assert text_redis.zscore(OUTBOX_DUE_KEY, "C0DEPLOYS") is not None


def test_redelivered_events_post_nothing_twice(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    clock = Clock()
    relay = make_relay(text_redis, slack, clock)
    queue_job(text_redis, "job000000002")
    emit(text_redis, "job000000002", EventType.STARTED)
    emit(text_redis, "job000000002", EventType.SUCCEEDED, digest=DIGEST)
    relay.step()
    calls_before = len(slack.calls)
    # The same events handled again (as after a crash before XACK) change nothing visible.
    for event_id, fields in text_redis.xrange(EVENTS_STREAM):
        relay._handle(event_id, fields)
    assert len(slack.calls) == calls_before
    assert len(job_posts(slack, "job000000002")) == 1
    assert len(announced(text_redis, "C0DEPLOYS")) == 1


def test_an_event_left_by_a_dead_relay_is_reclaimed_by_another(text_redis: redis.Redis,
                                                               slack: SlackStandIn) -> None:
    clock = Clock()
    queue_job(text_redis, "job000000003")
    # relay-dead reads the event and dies before handling it: it stays pending.
    text_redis.xgroup_create(EVENTS_STREAM, GROUP, id="0", mkstream=True)
    assert text_redis.xreadgroup(GROUP, "relay-dead", {EVENTS_STREAM: ">"}, count=10)
    survivor = make_relay(text_redis, slack, clock, consumer="relay-2", claim_idle_ms=100)
    time.sleep(0.2)
    survivor.step()
    assert len(job_posts(slack, "job000000003")) == 1
    assert text_redis.xpending(EVENTS_STREAM, GROUP)["pending"] == 0


def test_not_in_channel_falls_back_to_the_response_url(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    clock = Clock()
    slack.fail("chat.postMessage", "not_in_channel", channel="C0PRIVATE")
    relay = make_relay(text_redis, slack, clock, notify=None)
    queue_job(text_redis, "job000000004", channel="C0PRIVATE", response_url=slack.response_url("job4"))
    relay.step()
    emit(text_redis, "job000000004", EventType.STARTED)
    emit(text_redis, "job000000004", EventType.FAILED, reason="image_not_found", message="local image x not found")
    relay.step()
    bodies = [body for path, body in slack.responses if path.endswith("/job4")]
    assert [b["text"].split(":")[0] for b in bodies] == ["queued", "failed"]
    assert bodies[1]["replace_original"] is True and bodies[0]["response_type"] == "in_channel"
    assert "local image not found" in bodies[1]["text"]
    assert text_redis.hget(slack_message_key("job000000004"), "mode") == "response_url"


def test_rate_limited_updates_are_retried_after_retry_after(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    clock = Clock()
    relay = make_relay(text_redis, slack, clock)
    queue_job(text_redis, "job000000005")
    relay.step()
    slack.fail("chat.update", "ratelimited", status=429, retry_after=1, times=1)
    emit(text_redis, "job000000005", EventType.SUCCEEDED, digest=DIGEST)
    started = time.monotonic()
    relay.step()
    assert time.monotonic() - started >= 0.9  # waited as Slack asked
    updates = slack.calls_to("chat.update")
    assert len(updates) == 2 and updates[-1].params["text"].startswith("succeeded")


def test_console_jobs_are_not_sent_to_slack(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack, Clock())
    queue_job(text_redis, "job000000006", frontend="console", channel="console")
    emit(text_redis, "job000000006", EventType.SUCCEEDED, digest=DIGEST)
    relay.step()
    assert slack.calls_to("chat.postMessage") == []
    assert text_redis.xpending(EVENTS_STREAM, GROUP)["pending"] == 0


def test_drain_relays_what_is_waiting_and_returns_when_nothing_is_left(text_redis: redis.Redis,
                                                                      slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack, Clock())
    for index in range(3):
        queue_job(text_redis, f"drain0000{index:03d}")
    started = time.monotonic()
    assert relay.drain(timeout=10) == 3
    assert time.monotonic() - started < 5
    assert len(slack.calls_to("chat.postMessage")) == 3
    assert relay.drain(timeout=10) == 0


# ---- response_url posts ----------------------------------------------------------------------------


class ResponseUrl:
    """A response_url endpoint answering each POST with the next scripted (status, headers), then 200."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]]] = []
        self.posts: list[tuple[str, dict]] = []  # (Content-Type, body)
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.posts.append((self.headers.get("Content-Type", ""), json.loads(raw)))
                status, headers = endpoint.script.pop(0) if endpoint.script else (200, {})
                payload = b"ok" if status == 200 else b"<html>no</html>"
                self.send_response(status)
                for key, value in {"Content-Length": str(len(payload)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/response/T0/B0/secret"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def response_url() -> Iterator[ResponseUrl]:
    endpoint = ResponseUrl()
    yield endpoint
    endpoint.close()


BODY = {"response_type": "in_channel", "text": "queued: job x", "replace_original": False}


def test_a_response_url_post_is_retried_over_server_errors(response_url: ResponseUrl) -> None:
    response_url.script = [(503, {}), (500, {})]
    post_response_url(response_url.url, BODY)
    assert [body for _type, body in response_url.posts] == [BODY] * 3
    assert all(kind.startswith("application/json") for kind, _body in response_url.posts)


def test_a_rate_limited_response_url_post_waits_out_retry_after(response_url: ResponseUrl) -> None:
    response_url.script = [(429, {"Retry-After": "1"})]
    started = time.monotonic()
    post_response_url(response_url.url, BODY)
    assert time.monotonic() - started >= 1.0
    assert len(response_url.posts) == 2


@pytest.mark.parametrize(("script", "attempts"), [([(404, {})], 1), ([(500, {})] * 3, 3)])
def test_a_refused_response_url_post_raises_with_its_status(response_url: ResponseUrl,
                                                            script: list[tuple[int, dict[str, str]]],
                                                            attempts: int) -> None:
    response_url.script = list(script)
    with pytest.raises(ResponseUrlError) as refused:
        post_response_url(response_url.url, BODY)
    assert refused.value.status == script[0][0]
    assert len(response_url.posts) == attempts  # a 4xx is not retried, a 5xx twice


def test_an_unreachable_or_non_http_response_url_raises() -> None:
    with pytest.raises(OSError):
        post_response_url(f"http://127.0.0.1:{free_port()}/response/x", BODY, timeout=2)
    with pytest.raises(ValueError):
        post_response_url("file:///etc/passwd", BODY)


def test_a_failing_response_url_leaves_the_event_for_a_later_try(text_redis: redis.Redis, slack: SlackStandIn,
                                                                 response_url: ResponseUrl) -> None:
    clock = Clock()
    slack.fail("chat.postMessage", "not_in_channel", channel="C0PRIVATE")
    relay = make_relay(text_redis, slack, clock, notify=None, claim_idle_ms=1)
    response_url.script = [(404, {})]
    queue_job(text_redis, "job000000009", channel="C0PRIVATE", response_url=response_url.url)
    assert relay.step() == 0
    assert text_redis.xpending(EVENTS_STREAM, GROUP)["pending"] == 1
    assert text_redis.hget(slack_message_key("job000000009"), "uses") == "0"
    clock.now += 60  # the event is reclaimed and handled again
    time.sleep(0.01)
    relay.step()
    assert text_redis.xpending(EVENTS_STREAM, GROUP)["pending"] == 0
    assert [body["text"].split(":")[0] for _type, body in response_url.posts] == ["queued", "queued"]
    assert text_redis.hget(slack_message_key("job000000009"), "uses") == "1"


def routed_relay(connection: redis.Redis, slack: SlackStandIn, clock: Clock, events: frozenset[str]) -> Relay:
    config = replace(parse_config({
        "registries": {"main": {"server": "127.0.0.1:5000", "services_hostname": "namespace.example.com",
                                "username": "u", "password_env": "REGISTRY_PASSWORD"}},
        "default_registry": "main", "hosts": ["build-1"], "notify_channel": "C0DEPLOYS",
        "access": {"roles": {"admin": {"actions": ["*"]}}, "grants": [{"role": "admin", "users": ["U0ADMIN"]}]},
    }), routes=(NotificationRoute(channel="C0APPS", images=("centos7-*",)),
                NotificationRoute(channel="C0DEPLOYS", images=("**",))))
    client = build_web_client(Secret(BOT_TOKEN), slack.api_url)
    relay = Relay(connection, client, consumer="relay-1", respond=post_response_url, notify_channel="C0DEPLOYS",
                  router=Router(config), events_registries=events, clock=clock)
    relay.ensure_group()
    return relay


def test_a_job_change_of_a_registry_without_events_goes_to_each_routed_channel_once(
        text_redis: redis.Redis, slack: SlackStandIn) -> None:
    clock = Clock()
    relay = routed_relay(text_redis, slack, clock, frozenset())
    queue_job(text_redis, "job000000011")
    earlier = "sha256:" + "ab" * 32
    record_changes(text_redis, [TagChange(at=1.0, reference=REF, digest=earlier, previous=None, who="ci", how="push"),
                                TagChange(at=2.0, reference=REF, digest=DIGEST, previous=earlier, who="U0DEV1",
                                          how="push", job_id="job000000011")])
    emit(text_redis, "job000000011", EventType.SUCCEEDED, digest=DIGEST)
    relay.step()
    for event_id, fields in text_redis.xrange(EVENTS_STREAM):  # handled again, as after a crash before XACK
        relay._handle(event_id, fields)
    for channel in ("C0APPS", "C0DEPLOYS"):
        (notice,) = announced(text_redis, channel)
        assert (notice.kind, notice.digest, notice.previous, notice.who, notice.how) == (
            "push", DIGEST, earlier, "U0DEV1", "push")
    assert not [c for c in slack.calls_to("chat.postMessage") if c.params["channel"] in ("C0APPS", "C0DEPLOYS")]


def test_a_job_change_of_a_registry_with_events_is_left_to_its_event(text_redis: redis.Redis,
                                                                     slack: SlackStandIn) -> None:
    clock = Clock()
    relay = routed_relay(text_redis, slack, clock, frozenset({"main"}))
    queue_job(text_redis, "job000000012")
    emit(text_redis, "job000000012", EventType.SUCCEEDED, digest=DIGEST)
    relay.step()
    assert announced(text_redis, "C0APPS") == [] and announced(text_redis, "C0DEPLOYS") == []
    assert text_redis.hget(slack_message_key("job000000012"), "notified") == "1"
    assert len(job_posts(slack, "job000000012")) == 1  # the job's own message still goes to its channel


def test_a_job_that_pushed_the_digest_the_tag_had_announces_nothing(text_redis: redis.Redis,
                                                                     slack: SlackStandIn) -> None:
    clock = Clock()
    relay = routed_relay(text_redis, slack, clock, frozenset())
    queue_job(text_redis, "job000000013")
    record_changes(text_redis, [TagChange(at=1.0, reference=REF, digest=DIGEST, previous=None, who="ci", how="push")])
    emit(text_redis, "job000000013", EventType.SUCCEEDED, digest=DIGEST)
    relay.step()
    assert announced(text_redis, "C0DEPLOYS") == []
    assert text_redis.hget(slack_message_key("job000000013"), "notified") == "1"
