"""The announcer on real Redis against the Slack stand-in: outboxes drained, coalesced, never dropped."""

from __future__ import annotations

import json
import threading
import time

import redis

from bot.core import outbox
from bot.core.announcements import Announcement
from bot.slack.announcement_messages import MAX_BLOCKS, SECTION_LIMIT, message
from bot.slack.announcer import MAX_GROUP, Announcer
from bot.slack.client import build_web_client
from tests.bot.conftest import BOT_TOKEN
from tests.support.slack_standin import SlackStandIn
from workers.kernel.keys import OUTBOX_DUE_KEY, outbox_key, outbox_lock_key
from workers.kernel.secrets import Secret

SERVER = "127.0.0.1:5000"
REPO = "com.example.namespace/centos7-app"
CHANNEL = "C0SEARCH"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def push(n: int, *, tag: str | None = None, previous: str | None = None, at: float = 1_000_000.0,
         repository: str = REPO, **extra: object) -> Announcement:
    return Announcement(kind="push", registry="main", server=SERVER, repository=repository,
                        tags=(tag or f"v{n}",), digest=digest(n), at=at, previous=previous, **extra)  # type: ignore[arg-type]


def make(connection: redis.Redis, slack: SlackStandIn, clock: Clock | None = None,
         consumer: str = "serve-1") -> Announcer:
    client = build_web_client(Secret(BOT_TOKEN), slack.api_url, wait_on_rate_limits=False)
    return Announcer(connection, client, consumer=consumer, clock=clock or time.time)


def posts(slack: SlackStandIn, channel: str = CHANNEL) -> list[dict]:
    return [c.params for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == channel]


def blocks_text(params: dict) -> str:
    blocks = params["blocks"]
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return "\n".join(json.dumps(block) for block in blocks)


def test_one_push_is_announced_with_reference_digests_and_who(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    clock = Clock()
    outbox.put(text_redis, CHANNEL, push(1, tag="latest", previous=digest(9), who="ci-bot",
                                         address="10.1.2.3"), clock.now)
    assert make(text_redis, slack, clock).step() == 1
    [sent] = posts(slack)
    assert f"{SERVER}/{REPO}:latest" in sent["text"]
    assert digest(1) in sent["text"] and digest(9) in sent["text"]  # the fallback carries whole digests
    assert "moved from" in sent["text"] and "ci-bot" in sent["text"]
    assert "10.1.2.3" in blocks_text(sent)
    assert text_redis.llen(outbox_key(CHANNEL)) == 0
    assert text_redis.zscore(OUTBOX_DUE_KEY, CHANNEL) == clock.now + 1  # the next message waits a second
    clock.now += 1
    assert make(text_redis, slack, clock).step() == 0
    assert text_redis.zscore(OUTBOX_DUE_KEY, CHANNEL) is None  # nothing waits: the channel leaves the due set


def test_a_push_by_a_regops_job_names_the_slack_user_and_the_job(text_redis: redis.Redis,
                                                                  slack: SlackStandIn) -> None:
    outbox.put(text_redis, CHANNEL, push(1, tag="latest", who="U0DEV1", by_slack=True, job_id="j-1",
                                         how="push"), time.time())
    make(text_redis, slack).step()
    [sent] = posts(slack)
    assert "<@U0DEV1>" in sent["text"] and "j-1" in sent["text"] and "new tag" in sent["text"]


def test_a_delete_names_the_digest_and_its_tags(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    outbox.put(text_redis, CHANNEL, Announcement(kind="delete", registry="main", server=SERVER, repository=REPO,
                                                 tags=("1.0", "stable"), digest=digest(3), at=1.0, who="admin"),
               time.time())
    make(text_redis, slack).step()
    [sent] = posts(slack)
    assert f"{SERVER}/{REPO}@{digest(3)}" in sent["text"]
    assert "`1.0`" in sent["text"] and "`stable`" in sent["text"] and "eleted" in sent["text"]


def test_what_comes_while_a_channel_waits_goes_in_one_message_ordered_by_registry_time(
        text_redis: redis.Redis, slack: SlackStandIn) -> None:
    clock = Clock()
    announcer = make(text_redis, slack, clock)
    outbox.put(text_redis, CHANNEL, push(0), clock.now)
    assert announcer.step() == 1
    for n, at in ((3, 30.0), (1, 10.0), (2, 20.0)):  # the registry does not send in order
        outbox.put(text_redis, CHANNEL, push(n, at=1_000_000.0 + at), clock.now)
    assert announcer.step() == 0  # posted less than a second ago: not due yet
    clock.now += 1.0
    assert announcer.step() == 1
    _first, second = posts(slack)
    assert "3 pushes" in second["text"]
    text = second["text"]
    assert text.index(digest(1)) < text.index(digest(2)) < text.index(digest(3))
    assert text_redis.llen(outbox_key(CHANNEL)) == 0


def test_a_429_puts_the_channel_off_for_its_retry_after_and_keeps_everything(text_redis: redis.Redis,
                                                                              slack: SlackStandIn) -> None:
    clock = Clock()
    slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=7, times=1)
    announcer = make(text_redis, slack, clock)
    outbox.put(text_redis, CHANNEL, push(1), clock.now)
    assert announcer.step() == 0
    assert text_redis.llen(outbox_key(CHANNEL)) == 1
    assert text_redis.zscore(OUTBOX_DUE_KEY, CHANNEL) == clock.now + 7
    clock.now += 6.5
    assert announcer.step() == 0 and len(slack.calls_to("chat.postMessage")) == 1
    clock.now += 0.5
    assert announcer.step() == 1
    assert digest(1) in posts(slack)[-1]["text"]


def test_a_failing_channel_backs_off_and_other_channels_go_on(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    clock = Clock()
    slack.fail("chat.postMessage", "channel_not_found", channel="C0GONE")
    announcer = make(text_redis, slack, clock)
    outbox.put(text_redis, "C0GONE", push(1), clock.now)
    outbox.put(text_redis, CHANNEL, push(2), clock.now)
    assert announcer.step() == 1
    assert digest(2) in posts(slack)[0]["text"]
    assert text_redis.llen(outbox_key("C0GONE")) == 1  # kept: never dropped for a Slack failure
    first_delay = float(text_redis.zscore(OUTBOX_DUE_KEY, "C0GONE") or 0) - clock.now
    clock.now += first_delay
    announcer.step()
    second_delay = float(text_redis.zscore(OUTBOX_DUE_KEY, "C0GONE") or 0) - clock.now
    assert 0 < first_delay < second_delay


def test_a_channel_another_announcer_is_posting_to_is_left_alone(text_redis: redis.Redis,
                                                                  slack: SlackStandIn) -> None:
    outbox.put(text_redis, CHANNEL, push(1), time.time())
    text_redis.set(outbox_lock_key(CHANNEL), "serve-2", px=30_000)
    assert make(text_redis, slack).step() == 0
    assert slack.calls_to("chat.postMessage") == [] and text_redis.llen(outbox_key(CHANNEL)) == 1
    text_redis.delete(outbox_lock_key(CHANNEL))
    assert make(text_redis, slack).step() == 1


def test_an_unreadable_entry_is_dropped_and_the_rest_announced(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    text_redis.rpush(outbox_key(CHANNEL), "{not json")
    outbox.put(text_redis, CHANNEL, push(1), time.time())
    assert make(text_redis, slack).step() == 1
    assert digest(1) in posts(slack)[0]["text"]
    assert text_redis.llen(outbox_key(CHANNEL)) == 0


def test_more_than_one_message_can_hold_go_in_the_next_one_none_missing(text_redis: redis.Redis,
                                                                         slack: SlackStandIn) -> None:
    clock = Clock()
    announcer = make(text_redis, slack, clock)
    total = MAX_GROUP + 7
    for n in range(total):
        outbox.put(text_redis, CHANNEL, push(n, at=clock.now + n / 100), clock.now)
    assert announcer.step() == 1
    clock.now += 1.0
    assert announcer.step() == 1
    seen = "\n".join(blocks_text(p) for p in posts(slack))
    assert all(digest(n)[:19] in seen for n in range(total))
    assert f"{MAX_GROUP} pushes" in posts(slack)[0]["text"] and "7 pushes" in posts(slack)[1]["text"]


def test_a_big_burst_stays_inside_slacks_limits() -> None:
    long_repo = "com.example.namespace/" + "x" * 200
    items = [push(n, repository=long_repo, tag="t" * 120, previous=digest(n + 1)) for n in range(MAX_GROUP)]
    text, blocks = message(items)
    assert len(blocks) <= MAX_BLOCKS
    assert all(len(b.get("text", {}).get("text", "")) <= SECTION_LIMIT for b in blocks)
    assert len(text) <= 4000 and "more" in text
    assert f"{MAX_GROUP} pushes" in text


def test_a_burst_against_slacks_per_channel_limit_arrives_coalesced_none_missing(
        text_redis: redis.Redis, slack: SlackStandIn) -> None:
    slack.channel_interval = 1.0  # Slack answers 429 to a second message within a second
    announcer = make(text_redis, slack)
    stop = threading.Event()
    thread = threading.Thread(target=announcer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for n in range(40):  # a CI job pushing 40 tags in about 2 s
            outbox.put(text_redis, CHANNEL, push(n, at=time.time()), time.time())
            time.sleep(0.05)
        slack.wait_for(lambda: text_redis.llen(outbox_key(CHANNEL)) == 0
                       and text_redis.zscore(OUTBOX_DUE_KEY, CHANNEL) is None, timeout=30, what="outbox drained")
    finally:
        stop.set()
        thread.join(5)
    calls = [c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == CHANNEL]
    seen = "\n".join(blocks_text(c.params) for c in calls)
    assert all(digest(n)[:19] in seen for n in range(40))
    assert len(calls) < 10  # coalesced: far fewer messages than pushes (the calls answered 429 included)
    posted = [key for key in slack.messages if key[0] == CHANNEL]
    assert 2 <= len(posted) <= len(calls)
