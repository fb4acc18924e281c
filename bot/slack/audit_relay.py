"""Audit entries → the optional ``audit_channel``: one plain-text line per entry, posted once.

Every ``serve`` process may run an audit relay; they share the audit stream through
one consumer group, so each entry is posted by one relay, at least once: an entry
is acknowledged only after Slack accepted its post, and entries left pending by a
relay that died are reclaimed.  While a relay posts an entry it holds a short
per-entry lock, so a relay that reclaims it meanwhile (a slow post waiting out a
429) does not post it too; and the ids of posted entries are kept for a week, so
an entry delivered again after it was posted (an ack that failed, a consumer group
reset) is acknowledged without a second post.  Only a crash between Slack's answer
and the mark can still post an entry twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.audit import format_line
from bot.slack.client import TRANSIENT_ERRORS
from bot.slack.consumer import StreamConsumer
from workers.kernel.audit import AuditEntry
from workers.kernel.keys import AUDIT_POSTED_KEY, AUDIT_POSTING_PREFIX, AUDIT_STREAM

log = logging.getLogger(__name__)

GROUP = "regops-audit-relay"
POSTED_TTL_SECONDS = 7 * 24 * 3600
POST_LOCK_MS = 120_000
"""Longer than a post can take with the client's retries (429 waits included)."""
MAX_TEXT = 2900
"""Slack caps a text object at 3000 characters."""


class AuditRelay(StreamConsumer):
    """Posts each audit entry to ``channel``; see the module docstring for the delivery promise.

    Its group starts at the end of the stream: turning ``audit_channel`` on for a trail
    that already holds months of entries must not replay them all into the channel;
    they stay readable with ``regops audit``.
    """

    stream = AUDIT_STREAM
    group = GROUP
    start_id = "$"
    label = "audit relay"

    def __init__(
        self,
        connection: redis.Redis,
        client: WebClient,
        channel: str,
        *,
        consumer: str,
        claim_idle_ms: int = 30_000,
        post_lock_ms: int = POST_LOCK_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(connection)
        self._client = client
        self._channel = channel
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._post_lock_ms = post_lock_ms
        self._clock = clock
        self._last_claim = float("-inf")

    def step(self, block_ms: int = 0) -> int:
        """Post reclaimed and new entries; return how many were handled (posted or already posted)."""
        handled = 0
        now = self._clock()
        if now - self._last_claim >= self._claim_idle_ms / 1000 / 3:
            self._last_claim = now
            count, stalled = self._handle_all(self._reclaim())
            handled += count
            if stalled:  # new entries would only pile onto a Slack that is refusing now
                return handled
        entries = self._redis.xreadgroup(GROUP, self._consumer, {AUDIT_STREAM: ">"}, count=100,
                                         block=block_ms or None)
        for _stream, messages in entries or []:
            handled += self._handle_all(messages)[0]
        return handled

    def _reclaim(self) -> list[Any]:
        result = self._redis.xautoclaim(AUDIT_STREAM, GROUP, self._consumer,
                                        min_idle_time=self._claim_idle_ms, start_id="0-0", count=100)
        return list(result[1]) if result else []

    def _handle_all(self, messages: list[Any]) -> tuple[int, bool]:
        """Handle entries in stream order; stop at the first Slack can't take (returns True then)."""
        handled = 0
        for entry_id, fields in messages:
            if fields is None:  # deleted from the stream by hand while pending: nothing to post
                self._redis.xack(AUDIT_STREAM, GROUP, entry_id)
                continue
            try:
                handled += self._handle(entry_id, fields)
            except _Transient as exc:
                # Leave this entry and the rest pending: they are reclaimed, in order, later.
                log.warning("audit relay: entry %s not posted yet (%s); will retry", entry_id, exc)
                return handled, True
        return handled, False

    def _handle(self, entry_id: str, fields: dict[str, str]) -> bool:
        """Post the entry unless it was posted already; False when another relay is posting it now."""
        lock = f"{AUDIT_POSTING_PREFIX}{entry_id}"
        if not self._redis.set(lock, self._consumer, nx=True, px=self._post_lock_ms):
            # A relay that reclaimed the entry while its first owner still waits on Slack must not post it
            # too; the entry stays pending and is looked at again once the lock is gone.
            return False
        try:
            if self._redis.zscore(AUDIT_POSTED_KEY, entry_id) is None:
                self._post(entry_id, AuditEntry.from_fields(fields))
                # Marked at once, on its own: the mark is what stops a second post if the ack below fails.
                self._redis.zadd(AUDIT_POSTED_KEY, {entry_id: self._clock()})
        except _Transient:
            self._redis.delete(lock)
            raise
        pipe = self._redis.pipeline(transaction=True)
        pipe.xack(AUDIT_STREAM, GROUP, entry_id)
        pipe.zremrangebyscore(AUDIT_POSTED_KEY, "-inf", self._clock() - POSTED_TTL_SECONDS)
        pipe.delete(lock)
        pipe.execute()
        return True

    def _post(self, entry_id: str, entry: AuditEntry) -> None:
        line = format_line(entry)
        if len(line) > MAX_TEXT:
            line = line[: MAX_TEXT - 1] + "…"
        try:
            # A plain_text element: nothing in a command can mention, link or format in the channel.
            self._client.chat_postMessage(
                channel=self._channel,
                text=_escape(line),
                blocks=[{"type": "context", "elements": [{"type": "plain_text", "text": line, "emoji": False}]}],
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            error = exc.response.get("error", "") if exc.response is not None else ""
            if error in TRANSIENT_ERRORS:
                raise _Transient(error) from exc
            # invalid_auth, channel_not_found, is_archived … do not heal by retrying this entry.
            log.error("audit relay: entry %s: chat.postMessage to %s failed with %s; not posted",
                      entry_id, self._channel, error)
            return
        except Exception as exc:  # connection errors after the client's own retries
            raise _Transient(type(exc).__name__) from exc
        log.debug("audit relay: entry %s posted to %s", entry_id, self._channel)


class _Transient(Exception):
    """Slack could not take the post now; the entry stays pending."""


def _escape(text: str) -> str:
    # The fallback text is mrkdwn: Slack asks for &, < and > to be escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
