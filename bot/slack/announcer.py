"""Posts what waits in the channels' outboxes (:mod:`bot.core.outbox`): about one message a second per channel.

Each serve process runs one :class:`Announcer`; replicas share the outboxes and take turns per
channel through a short lock.  A channel that is due gets everything waiting (up to
:data:`MAX_GROUP` changes) in one message; entries leave the outbox only after Slack took the
message.  A 429 puts the channel off for its ``Retry-After``; other failures put it off with a
backoff and keep the entries (an announcement is never dropped for a Slack failure; unreadable
entries are dropped with a log line).  A crash between Slack's answer and the trim posts that
message once more: the window is one Redis round trip.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.announcements import Announcement
from bot.core.metrics import Metrics
from bot.slack.announcement_messages import message
from workers.kernel.keys import OUTBOX_DUE_KEY, outbox_key, outbox_lock_key
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

INTERVAL = 1.0
"""Seconds between two messages in one channel (Slack: about one per second per channel)."""
MAX_GROUP = 150
"""Changes in one message at most; more wait for the next one."""
LOCK_MS = 30_000
BACKOFF = (2.0, 5.0, 15.0, 60.0, 300.0)
"""Put-offs after consecutive failures of one channel (seconds)."""
POLL = 0.5
DUE_BATCH = 20

_TRIM = """
redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
if tonumber(ARGV[1]) == 0 and redis.call('LLEN', KEYS[1]) == 0 then
  return redis.call('ZREM', KEYS[2], ARGV[2])
end
return redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
"""
"""KEYS: the outbox, the due set; ARGV: entries done with, the channel, when it may post next.

After a message the channel stays in the due set until its interval has passed, even with
nothing waiting, so that what comes meanwhile waits (``put`` adds it only when absent); a due
channel found with nothing waiting (ARGV[1] 0) leaves the set."""

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Announcer:
    """Drains the outboxes; :meth:`step` once, :meth:`run` until stopped."""

    def __init__(self, connection: redis.Redis, client: WebClient, *, consumer: str,
                 clock: Callable[[], float] = time.time, interval: float = INTERVAL,
                 metrics: Metrics | None = None) -> None:
        self._redis = connection
        self._client = client
        self._consumer = consumer
        self._clock = clock
        self._interval = interval
        self._metrics = metrics
        self._failures: dict[str, int] = {}
        self._trim = connection.register_script(_TRIM)
        self._release = connection.register_script(_RELEASE)

    def run(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                self.step()
                failures = 0
                stop.wait(self._pause())
            except redis.RedisError as exc:
                failures += 1
                log.warning("announcer: Redis unavailable (%s); retrying", type(exc).__name__)
                stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _pause(self) -> float:
        nearest = self._redis.zrange(OUTBOX_DUE_KEY, 0, 0, withscores=True)
        if not nearest:
            return POLL
        return max(0.0, min(POLL, float(nearest[0][1]) - self._clock()))

    def step(self) -> int:
        """Post one message to each channel that is due; how many messages went."""
        now = self._clock()
        due = self._redis.zrangebyscore(OUTBOX_DUE_KEY, "-inf", now, start=0, num=DUE_BATCH)
        return sum(self._channel(as_str(channel), now) for channel in due)

    def _channel(self, channel: str, now: float) -> int:
        lock = outbox_lock_key(channel)
        if not self._redis.set(lock, self._consumer, nx=True, px=LOCK_MS):
            return 0
        try:
            # Another process may have posted here between this step's read of the due set and the lock.
            due = self._redis.zscore(OUTBOX_DUE_KEY, channel)
            return self._post(channel, now) if due is not None and float(due) <= now else 0
        finally:
            self._release(keys=[lock], args=[self._consumer])

    def _post(self, channel: str, now: float) -> int:
        raw = self._redis.lrange(outbox_key(channel), 0, MAX_GROUP - 1)
        items = []
        for entry in raw:
            try:
                items.append(Announcement.from_json(entry))
            except (ValueError, KeyError, TypeError):
                log.error("announcer: dropped an unreadable outbox entry of channel %s", channel)
        if not items:
            self._trim(keys=[outbox_key(channel), OUTBOX_DUE_KEY], args=[len(raw), channel, now])
            return 0 if not raw else self._post(channel, now)
        text, blocks = message(items)
        try:
            self._client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                          unfurl_links=False, unfurl_media=False)
        except (SlackApiError, OSError, http.client.HTTPException) as exc:  # Slack may heal: try again later
            self._put_off(channel, now, exc)
            return 0
        self._failures.pop(channel, None)
        # The interval runs from Slack's answer, not from this step's start: two messages never reach
        # Slack closer together than it allows, however long this post took to get there.
        done = max(now, self._clock())
        self._trim(keys=[outbox_key(channel), OUTBOX_DUE_KEY], args=[len(raw), channel, done + self._interval])
        log.info("announcer: %d change(s) announced in %s", len(items), channel)
        return 1

    def _put_off(self, channel: str, now: float, exc: Exception) -> None:
        if self._metrics is not None:
            self._metrics.slack_error("chat.postMessage")
        failures = self._failures.get(channel, 0)
        delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
        detail = type(exc).__name__
        if isinstance(exc, SlackApiError) and exc.response is not None:
            detail = str(exc.response.get("error") or exc.response.status_code)
            if exc.response.status_code == 429:
                delay = _retry_after(exc.response.headers) or self._interval
                failures = -1  # a rate limit is no failure: the next put-off starts from the first step
        self._failures[channel] = failures + 1
        self._redis.zadd(OUTBOX_DUE_KEY, {channel: now + delay})
        log.warning("announcer: channel %s: chat.postMessage failed (%s); trying again in %.0f s",
                    channel, detail, delay)


def _retry_after(headers: Any) -> float | None:
    value = None
    for name, header in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            value = header[0] if isinstance(header, list) else header
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
