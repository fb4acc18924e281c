"""The audit relay on real Redis against the Slack stand-in: each entry posted once to the audit channel,
redeliveries and reclaims post nothing twice, 429s are waited out, Slack outages are retried."""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from slack_sdk import WebClient

from bot.core.audit import AuditLog, format_line
from bot.slack.audit_relay import GROUP, AuditRelay
from bot.slack.client import build_web_client
from tests.bot.conftest import BOT_TOKEN
from tests.support.slack_standin import SlackStandIn
from workers.kernel.audit import AuditEntry
from workers.kernel.keys import AUDIT_POSTED_KEY, AUDIT_STREAM
from workers.kernel.secrets import Secret

CHANNEL = "C0AUDIT"


def make_relay(connection: redis.Redis, slack: SlackStandIn, consumer: str = "audit-1",
               claim_idle_ms: int = 30_000, client: WebClient | None = None, **kwargs: Any) -> AuditRelay:
    relay = AuditRelay(connection, client or build_web_client(Secret(BOT_TOKEN), slack.api_url), CHANNEL,
                       consumer=consumer, claim_idle_ms=claim_idle_ms, **kwargs)
    relay.ensure_group()
    return relay


def record(connection: redis.Redis, n: int, **fields: str) -> AuditEntry:
    values = {"at": 1_700_000_000.0 + n, "user": "U0DEV1", "channel": "C0OPS", "kind": "command",
              "command": f"push centos7-app {n}", "decision": "queued", "rule": "grants[1] role deployer",
              "job_id": f"job{n:09d}"}
    values.update(fields)
    entry = AuditEntry(**values)  # type: ignore[arg-type]
    AuditLog(connection).record(entry)
    return entry


def posts(slack: SlackStandIn) -> list[str]:
    """Texts of the successful posts to the audit channel, in order."""
    return [message["blocks"][0]["elements"][0]["text"]
            for (channel, _ts), message in sorted(slack.messages.items(), key=lambda kv: kv[0][1])
            if channel == CHANNEL]


def pending(connection: redis.Redis) -> int:
    return int(connection.xpending(AUDIT_STREAM, GROUP)["pending"])


def test_each_entry_is_posted_once_in_order_as_one_plain_line(text_redis: redis.Redis,
                                                              slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack)
    entries = [record(text_redis, n) for n in range(3)]
    assert relay.step() == 3
    assert posts(slack) == [format_line(e) for e in entries]
    assert relay.step() == 0
    assert len(slack.calls_to("chat.postMessage")) == 3
    assert pending(text_redis) == 0
    call = slack.calls_to("chat.postMessage")[0]
    assert call.params["blocks"] == [{"type": "context", "elements": [
        {"type": "plain_text", "text": format_line(entries[0]), "emoji": False}]}]
    assert call.params["text"] == format_line(entries[0])


def test_a_command_cannot_mention_or_link_from_the_audit_channel(text_redis: redis.Redis,
                                                                 slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack)
    entry = record(text_redis, 1, command="push <!channel> <https://evil.example|x> & more", decision="invalid")
    relay.step()
    (call,) = slack.calls_to("chat.postMessage")
    assert "<!channel>" not in call.params["text"] and "<https://" not in call.params["text"]
    assert "&lt;!channel&gt;" in call.params["text"] and "&amp; more" in call.params["text"]
    # The block is plain_text: Slack shows it verbatim, so it can carry the line unescaped.
    assert call.params["blocks"][0]["elements"][0] == {"type": "plain_text", "text": format_line(entry),
                                                       "emoji": False}


def test_entries_delivered_again_after_they_were_posted_are_not_posted_twice(text_redis: redis.Redis,
                                                                           slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack)
    for n in range(4):
        record(text_redis, n)
    assert relay.step() == 4
    # Rewind the group, as a restored or reset group would: every entry is delivered afresh.
    text_redis.xgroup_setid(AUDIT_STREAM, GROUP, "0")
    assert relay.step() == 4
    assert len(slack.calls_to("chat.postMessage")) == 4
    assert pending(text_redis) == 0
    record(text_redis, 9)
    relay.step()
    assert len(posts(slack)) == 5


def test_an_entry_left_pending_by_a_dead_relay_is_reclaimed_and_posted_once(text_redis: redis.Redis,
                                                                          slack: SlackStandIn) -> None:
    make_relay(text_redis, slack)  # creates the group
    entry = record(text_redis, 1)
    # A relay that read the entry and died before posting it.
    text_redis.xreadgroup(GROUP, "dead-relay", {AUDIT_STREAM: ">"}, count=10)
    survivor = make_relay(text_redis, slack, consumer="audit-2", claim_idle_ms=200)
    assert survivor.step() == 0  # too fresh to be taken from the dead relay
    assert posts(slack) == []
    time.sleep(0.3)
    assert survivor.step() == 1
    assert posts(slack) == [format_line(entry)]
    assert pending(text_redis) == 0
    time.sleep(0.3)
    assert survivor.step() == 0
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_a_relay_reclaiming_an_entry_that_is_still_being_posted_leaves_it_alone(text_redis: redis.Redis,
                                                                              slack: SlackStandIn) -> None:
    slow = make_relay(text_redis, slack, consumer="slow")
    other = make_relay(text_redis, slack, consumer="other", claim_idle_ms=300)
    entry = record(text_redis, 1)
    slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=2, times=1)
    worker = threading.Thread(target=slow.step)
    worker.start()
    slack.wait_for(lambda: slack.calls_to("chat.postMessage"), 5, "the first (rate-limited) post")
    time.sleep(0.5)
    assert other.step() == 0
    # "other" took the entry over from "slow" (idle long enough), but "slow" is still posting it.
    (owner,) = text_redis.xpending_range(AUDIT_STREAM, GROUP, "-", "+", 10)
    assert owner["consumer"] == "other"
    worker.join(10)
    assert not worker.is_alive()
    time.sleep(0.4)
    other.step()
    assert posts(slack) == [format_line(entry)]
    assert pending(text_redis) == 0


def test_a_429_is_waited_out_and_the_entry_posted_once(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack)
    entry = record(text_redis, 1)
    slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=1, times=1)
    started = time.monotonic()
    assert relay.step() == 1
    assert time.monotonic() - started >= 1.0
    assert posts(slack) == [format_line(entry)]
    assert len(slack.calls_to("chat.postMessage")) == 2  # the refused attempt and the post


def test_while_slack_fails_entries_stay_pending_and_are_posted_in_order_later(text_redis: redis.Redis,
                                                                            slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack, claim_idle_ms=200)
    entries = [record(text_redis, n) for n in range(3)]
    slack.fail("chat.postMessage", "internal_error", times=1)
    assert relay.step() == 0
    assert posts(slack) == []
    assert pending(text_redis) == 3
    time.sleep(0.3)
    assert relay.step() == 3
    assert posts(slack) == [format_line(e) for e in entries]
    assert pending(text_redis) == 0


def test_a_permanent_slack_error_is_logged_and_not_retried_forever(text_redis: redis.Redis, slack: SlackStandIn,
                                                                   caplog: Any) -> None:
    relay = make_relay(text_redis, slack, claim_idle_ms=100)
    record(text_redis, 1)
    slack.fail("chat.postMessage", "channel_not_found", times=1)
    with caplog.at_level("ERROR", logger="bot.slack.audit_relay"):
        assert relay.step() == 1
    assert "channel_not_found" in caplog.text and CHANNEL in caplog.text
    time.sleep(0.2)
    assert relay.step() == 0
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert pending(text_redis) == 0


def test_entries_from_before_the_channel_was_configured_are_not_replayed(text_redis: redis.Redis,
                                                                         slack: SlackStandIn) -> None:
    old = [record(text_redis, n) for n in range(3)]
    relay = make_relay(text_redis, slack)
    new = record(text_redis, 3)
    assert relay.step() == 1
    assert posts(slack) == [format_line(new)]
    # A second relay (another serve process) joins the same group: it does not start over either.
    assert make_relay(text_redis, slack, consumer="audit-2").step() == 0
    assert list(AuditLog(text_redis).entries()) == [*old, new]


def test_posted_ids_are_remembered_only_for_a_while(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    clock = [1_000_000.0]
    relay = make_relay(text_redis, slack, clock=lambda: clock[0])
    record(text_redis, 1)
    relay.step()
    assert text_redis.zcard(AUDIT_POSTED_KEY) == 1
    clock[0] += 8 * 24 * 3600
    record(text_redis, 2)
    relay.step()
    assert text_redis.zrange(AUDIT_POSTED_KEY, 0, -1) == [text_redis.xrange(AUDIT_STREAM)[-1][0]]


def test_run_posts_entries_as_they_come_until_stopped(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"block_ms": 100}, daemon=True)
    thread.start()
    try:
        entry = record(text_redis, 1, kind="job", decision="succeeded", command="", outcome="sha256:" + "f" * 64)
        slack.wait_for(lambda: posts(slack), 10, "the audit post")
        assert posts(slack) == [format_line(entry)]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_the_relay_never_touches_the_audit_stream_itself(text_redis: redis.Redis, slack: SlackStandIn) -> None:
    relay = make_relay(text_redis, slack)
    written = [record(text_redis, n) for n in range(3)]
    relay.step()
    text_redis.xgroup_setid(AUDIT_STREAM, GROUP, "0")
    relay.step()
    assert list(AuditLog(text_redis).entries()) == written
