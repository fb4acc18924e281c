"""Job events → Slack: one message per job, posted once and edited in place, throttled.

Workers never talk to Slack; they append events to a Redis stream.  Every ``serve``
process runs a relay that reads the stream through one consumer group, so each
event is handled by one relay, at least once (unacknowledged events are reclaimed
from a relay that died).  Handling an event means *syncing* the job's message with
the job's current record, under a per-job lock: re-handling an event, or handling
events out of order, cannot post a second message or move the message backwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

import redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core import outbox
from bot.core.announcements import Announcement
from bot.core.answers import query_answer
from bot.core.approvals import NOTICE_EVENT, read_view
from bot.core.metrics import Metrics
from bot.core.queueing import Origin
from bot.core.registry_changes import job_announcement
from bot.core.replies import Reply, ReplyKind
from bot.core.routing import Router
from bot.core.text import Text
from bot.core.watchdog import Watchdog
from bot.slack.blocks import job_message, reply_body
from bot.slack.client import TRANSIENT_ERRORS, ResponseUrlError
from bot.slack.consumer import StreamConsumer
from bot.slack.mrkdwn import mrkdwn
from workers.kernel.actions import QUERY_ACTIONS
from workers.kernel.history import read_history
from workers.kernel.jobs import ENDED_STATES, EventType, JobRecord, JobState
from workers.kernel.keys import (
    EVENTS_STREAM,
    RELAY_DUE_KEY,
    answer_key,
    job_key,
    origin_key,
    relay_lock_key,
    slack_message_key,
)

log = logging.getLogger(__name__)

GROUP = "regops-relay"
THROTTLE_SECONDS = 3.0
RESPONSE_URL_USES = 5
FALLBACK_ERRORS = frozenset({"not_in_channel", "channel_not_found"})
UPDATE_LOST_ERRORS = frozenset({"message_not_found", "cant_update_message"})
STATE_TTL_SECONDS = 7 * 24 * 3600
HOUSEKEEPING_SECONDS = 1.0
NOTIFIED_ACTIONS = frozenset({"push", "promote", "rollback"})
"""Successful jobs announced in the routed channels (they change what a tag serves), unless the
job's registry sends events: then the registry's event of the change announces it (once)."""


class ResponseUrlSender(Protocol):
    def __call__(self, url: str, body: dict[str, Any]) -> None: ...


def _status(exc: SlackApiError) -> int:
    return int(getattr(exc.response, "status_code", 0) or 0)


def _error(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "")
    except (AttributeError, TypeError):  # a body that was not JSON (an HTML error page)
        return ""


def _transient(exc: SlackApiError) -> bool:
    status = _status(exc)
    return status == 429 or status >= 500 or _error(exc) in TRANSIENT_ERRORS or not _error(exc)


class TransientSlackError(Exception):
    """Slack could not be reached or refused for now: leave the event for a retry."""


class Relay(StreamConsumer):
    stream = EVENTS_STREAM
    group = GROUP
    label = "relay"

    def __init__(
        self,
        connection: redis.Redis,
        client: WebClient,
        *,
        consumer: str,
        respond: ResponseUrlSender,
        notify_channel: str | None = None,
        router: Router | None = None,
        events_registries: Collection[str] = (),
        throttle: float = THROTTLE_SECONDS,
        clock: Callable[[], float] = time.time,
        claim_idle_ms: int = 30_000,
        housekeeping: Callable[[], object] | None = None,
        watchdog: Watchdog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(connection)
        self._client = client
        self._consumer = consumer
        self._respond = respond
        self._notify_channel = notify_channel
        self._router = router
        self._events_registries = frozenset(events_registries)
        self._throttle = throttle
        self._clock = clock
        self._claim_idle_ms = claim_idle_ms
        self._last_claim = 0.0
        self._housekeeping = housekeeping
        self._watchdog = watchdog
        self._metrics = metrics
        self._last_housekeeping = 0.0

    # ---- the loop -------------------------------------------------------------------------

    def drain(self, timeout: float = 5.0) -> int:
        """On shutdown: relay what is waiting now, without blocking, until nothing is left or time is up.

        Whatever is still left stays pending in Redis for another relay (or the next start).
        """
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            try:
                handled = self.step(0)
            except (redis.RedisError, TransientSlackError):
                break
            total += handled
            if handled == 0:
                break
        return total

    def step(self, block_ms: int = 0) -> int:
        """Handle due throttled updates, reclaimed events and new events; return how many."""
        now = self._clock()
        if self._housekeeping is not None and now - self._last_housekeeping >= HOUSEKEEPING_SECONDS:
            self._last_housekeeping = now
            self._housekeeping()  # e.g. closing expired approval requests, which then emit events
        if self._watchdog is not None:
            self._watchdog.sweep()
        handled = self._run_due()
        if now - self._last_claim >= self._claim_idle_ms / 1000 / 3:
            self._last_claim = now
            handled += self._reclaim()
        entries = self._redis.xreadgroup(GROUP, self._consumer, {EVENTS_STREAM: ">"}, count=100,
                                         block=block_ms or None)
        for _stream, messages in entries or []:
            for event_id, fields in messages:
                handled += self._handle(event_id, fields)
        return handled

    def _reclaim(self) -> int:
        result = self._redis.xautoclaim(EVENTS_STREAM, GROUP, self._consumer,
                                        min_idle_time=self._claim_idle_ms, start_id="0-0", count=100)
        handled = 0
        for event_id, fields in result[1] if result else []:
            if fields is None:  # trimmed from the stream while pending
                self._redis.xack(EVENTS_STREAM, GROUP, event_id)
                continue
            log.info("relay: reclaimed event %s for job %s", event_id, fields.get("job_id"))
            handled += self._handle(event_id, fields)
        return handled

    def _run_due(self) -> int:
        now = self._clock()
        handled = 0
        for job_id in self._redis.zrangebyscore(RELAY_DUE_KEY, "-inf", now, start=0, num=50):
            if self._redis.zrem(RELAY_DUE_KEY, job_id):  # only the relay that removes it syncs it
                try:
                    self.sync(job_id)
                except TransientSlackError:
                    self._redis.zadd(RELAY_DUE_KEY, {job_id: now + self._throttle})
                handled += 1
        return handled

    def _handle(self, event_id: str, fields: dict[str, str]) -> int:
        job_id = fields.get("job_id")
        if self._watchdog is not None and job_id:
            self._watchdog.observe(fields.get("type", ""), job_id)
        if self._metrics is not None and job_id:
            self._observe(fields, job_id)
        try:
            if fields.get("type") == NOTICE_EVENT:
                self._notice(fields)
            elif job_id:
                self.sync(job_id)
        except TransientSlackError as exc:
            log.warning("relay: job %s not relayed yet (%s); will retry", job_id, exc)
            return 0
        self._redis.xack(EVENTS_STREAM, GROUP, event_id)
        return 1

    # ---- one job --------------------------------------------------------------------------

    def sync(self, job_id: str) -> None:
        """Bring the job's Slack message in line with its record."""
        origin_fields = self._redis.hgetall(origin_key(job_id))
        if not origin_fields or origin_fields.get("frontend") != "slack":
            return
        lock = self._redis.lock(relay_lock_key(job_id), timeout=60, blocking_timeout=15)
        if not lock.acquire():
            raise TransientSlackError("another relay holds the job's lock")
        try:
            self._sync_locked(job_id, Origin.from_fields(origin_fields))
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                pass

    def _sync_locked(self, job_id: str, origin: Origin) -> None:
        # The job's record and its message's state, read together (one round trip), under the lock.
        reads = self._redis.pipeline(transaction=False)
        reads.hgetall(job_key(job_id))
        reads.hgetall(slack_message_key(job_id))
        fields, state = reads.execute()
        if not fields:
            return
        record = JobRecord.from_fields(fields)
        if record.action in QUERY_ACTIONS:
            # A query never posts in the channel: its answer goes to the asker alone, once.
            if record.state in ENDED_STATES and not state.get("answered"):
                self._answer(job_id, origin, record)
            return
        text, blocks = job_message(record, read_view(self._redis, job_id))
        rendered = hashlib.sha256(json.dumps([text, blocks], sort_keys=True).encode()).hexdigest()
        terminal = record.state in ENDED_STATES
        now = self._clock()

        if state.get("rendered") != rendered:
            if state.get("mode") == "response_url":
                self._via_response_url(job_id, origin, state, text, blocks, terminal, rendered)
            elif not state.get("ts"):
                self._post(job_id, origin, text, blocks, rendered, now)
            else:
                last = float(state.get("updated_at", "0"))
                # A job's edits are throttled; outcomes and approval steps show at once.
                if not terminal and record.state != JobState.AWAITING_APPROVAL and now - last < self._throttle:
                    self._redis.zadd(RELAY_DUE_KEY, {job_id: last + self._throttle}, nx=True)
                    return
                self._update(job_id, origin, state, text, blocks, rendered, now)

        if (terminal and record.state == EventType.SUCCEEDED.value and record.action in NOTIFIED_ACTIONS
                and (self._router is not None or self._notify_channel) and not state.get("notified")):
            self._notify(job_id, record)

    def _save(self, job_id: str, **fields: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(slack_message_key(job_id), mapping=fields)
        pipe.expire(slack_message_key(job_id), STATE_TTL_SECONDS)
        pipe.execute()

    def _observe(self, fields: dict[str, str], job_id: str) -> None:
        assert self._metrics is not None
        if fields.get("at"):
            self._metrics.relay_lag(float(fields["at"]))
        if fields.get("type") in ENDED_STATES:
            self._metrics.job_ended(job_id)

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        """Call Slack; what may heal by waiting (429, 5xx, timeouts, no answer) becomes TransientSlackError."""
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            self._count_error(method)
            if _transient(exc):
                raise TransientSlackError(f"Slack answered {_status(exc)} {_error(exc) or ''}".strip()) from exc
            raise
        except Exception as exc:  # connection errors and timeouts after the client's own retries
            self._count_error(method)
            raise TransientSlackError(type(exc).__name__) from exc

    def _count_error(self, method: Callable[..., Any]) -> None:
        if self._metrics is not None:
            # chat_postMessage → chat.postMessage, the Web API method's own name
            self._metrics.slack_error(getattr(method, "__name__", "unknown").replace("_", ".", 1))

    def _post(self, job_id: str, origin: Origin, text: str, blocks: list, rendered: str, now: float) -> None:
        try:
            answer = self._call(self._client.chat_postMessage, channel=origin.channel, text=text,
                                blocks=blocks, unfurl_links=False, unfurl_media=False)
        except SlackApiError as exc:
            error = exc.response.get("error", "") if exc.response is not None else ""
            if error in FALLBACK_ERRORS and origin.response_url:
                log.info("relay: job %s: chat.postMessage said %s; using the response_url", job_id, error)
                self._save(job_id, mode="response_url", uses="0")
                self._via_response_url(job_id, origin, {"mode": "response_url", "uses": "0"}, text, blocks,
                                       False, rendered)
                return
            self._slack_failed("chat.postMessage", job_id, error)
            return
        self._save(job_id, ts=answer["ts"], channel=answer.get("channel") or origin.channel or "",
                   rendered=rendered, updated_at=str(now))
        log.info("relay: job %s message posted channel=%s ts=%s", job_id, answer.get("channel"), answer["ts"])

    def _update(self, job_id: str, origin: Origin, state: dict, text: str, blocks: list, rendered: str,
                now: float) -> None:
        try:
            self._call(self._client.chat_update, channel=state.get("channel") or origin.channel,
                       ts=state["ts"], text=text, blocks=blocks)
        except SlackApiError as exc:
            error = exc.response.get("error", "") if exc.response is not None else ""
            if error in UPDATE_LOST_ERRORS:
                log.warning("relay: job %s message cannot be updated (%s); posting a new one", job_id, error)
                self._post(job_id, origin, text, blocks, rendered, now)
                return
            self._slack_failed("chat.update", job_id, error)
            return
        self._save(job_id, rendered=rendered, updated_at=str(now))

    def _via_response_url(self, job_id: str, origin: Origin, state: dict, text: str, blocks: list,
                          terminal: bool, rendered: str) -> None:
        uses = int(state.get("uses", "0"))
        # response_url takes five posts: spend them on the first sight of the job and its outcome.
        if uses >= RESPONSE_URL_USES or (uses >= 1 and not terminal) or not origin.response_url:
            return
        body = {"response_type": "in_channel", "text": text, "blocks": blocks, "replace_original": uses > 0}
        try:
            self._respond(origin.response_url, body)
        except Exception as exc:
            raise TransientSlackError(f"response_url: {type(exc).__name__}") from exc
        self._save(job_id, mode="response_url", uses=str(uses + 1), rendered=rendered)

    def _answer(self, job_id: str, origin: Origin, record: JobRecord) -> None:
        """A query's answer (or why there is none), ephemerally: through the response_url, else postEphemeral."""
        answer = query_answer(record, self._redis.get(answer_key(job_id)),
                              lambda reference: read_history(self._redis, reference))
        text = mrkdwn(answer)
        body = reply_body(Reply(ReplyKind.ANSWER, answer))
        sent = False
        if origin.response_url:
            try:
                self._respond(origin.response_url, {**body, "replace_original": False})
                sent = True
            except (ResponseUrlError, ValueError, OSError) as exc:  # expired (30 min) or unreachable
                log.info("relay: query %s: response_url failed (%s); using chat.postEphemeral", job_id,
                         type(exc).__name__)
        if not sent:
            try:
                self._call(self._client.chat_postEphemeral, channel=origin.channel or "", user=origin.user,
                           text=text, blocks=body["blocks"])
            except SlackApiError as exc:
                error = exc.response.get("error", "") if exc.response is not None else ""
                self._slack_failed("chat.postEphemeral", job_id, error)
        self._save(job_id, answered="1")
        log.info("relay: query %s answered (%s)", job_id, record.state)

    def _notice(self, fields: dict[str, str]) -> None:
        """An ephemeral answer to one person (e.g. a click they were not allowed to make)."""
        try:
            self._call(self._client.chat_postEphemeral, channel=fields.get("channel", ""),
                       user=fields.get("user", ""),
                       text=mrkdwn(Text.from_json(fields.get("message", ""))))
        except SlackApiError as exc:
            error = exc.response.get("error", "") if exc.response is not None else ""
            self._slack_failed("chat.postEphemeral", fields.get("job_id", ""), error)

    def _notify(self, job_id: str, record: JobRecord) -> None:
        """Queue the job's change in each routed channel's outbox (the announcer posts it), once."""
        if record.registry in self._events_registries:
            self._save(job_id, notified="1")  # the registry's event of this change announces it
            log.info("relay: job %s is announced from registry %s's event", job_id, record.registry)
            return
        now = self._clock()
        announcement = job_announcement(record, read_history(self._redis, record.reference or ""), now)
        channels = self._channels(announcement) if announcement is not None else []
        pipe = self._redis.pipeline(transaction=True)
        for channel in channels:
            assert announcement is not None
            outbox.put(pipe, channel, announcement, now)
        pipe.hset(slack_message_key(job_id), "notified", "1")
        pipe.expire(slack_message_key(job_id), STATE_TTL_SECONDS)
        pipe.execute()
        log.info("relay: job %s announced in %s", job_id, ", ".join(channels) or "no channel")

    def _channels(self, announcement: Announcement) -> list[str]:
        if self._router is not None:
            return self._router.channels(announcement)
        return [self._notify_channel] if self._notify_channel else []

    @staticmethod
    def _slack_failed(method: str, job_id: str, error: str) -> None:
        if error in TRANSIENT_ERRORS or not error:
            raise TransientSlackError(f"{method}: {error or 'no error code'}")
        # Errors such as is_archived or invalid_auth do not heal by retrying the same event.
        log.error("relay: job %s: %s failed with %s; giving up on this message", job_id, method, error)
