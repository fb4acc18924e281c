"""Registry events → tag history and per-channel outboxes, each event exactly once.

Every ``serve`` process reads :data:`REGISTRY_EVENTS_STREAM` through one consumer group.  For each
event the decision (:func:`bot.core.registry_changes.decide`) is read under WATCH, then ONE
MULTI/EXEC writes the history entries, the announcement into each routed channel's outbox
(:func:`bot.core.outbox.put`), the used-up expectations and the XACK (a delete's events are
first gathered into one pending delete, announced by a later transaction of its own once its
tag events had time to come): a crash before EXEC leaves
the event pending (another process reclaims it once idle and decides again), a crash after it
has nothing left to redo, and two processes deciding on the same tag at once cannot both write
(the loser's EXEC fails on the watched keys and it decides again).  Posting is
:mod:`bot.slack.announcer`'s work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from bot.core import outbox
from bot.core.registry_changes import DELETE_HOLD_SECONDS, Decision, decide, settle
from bot.core.registry_events import RegistryEvent
from bot.core.routing import Router
from bot.slack.consumer import StreamConsumer
from workers.kernel.config import Config
from workers.kernel.history import record_changes
from workers.kernel.keys import (
    EXPECTATION_TTL_SECONDS,
    PENDING_DELETES_DUE_KEY,
    REGISTRY_EVENTS_GROUP,
    REGISTRY_EVENTS_STREAM,
)
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

CLAIM_IDLE_MS = 30_000
"""An event read but not acknowledged for this long belongs to a process that died: any other takes it."""
WATCH_ATTEMPTS = 20
"""Decisions retried when their keys changed under them, before the event is left for a later step."""


class RegistryEventConsumer(StreamConsumer):
    """Turns the stream's events into history and outbox entries; ``consumer`` names this process."""

    stream = REGISTRY_EVENTS_STREAM
    group = REGISTRY_EVENTS_GROUP
    start_id = "0"
    label = "registry events"

    def __init__(self, connection: redis.Redis, config: Config, router: Router, *, consumer: str,
                 claim_idle_ms: int = CLAIM_IDLE_MS, clock: Callable[[], float] = time.time) -> None:
        super().__init__(connection)
        self._config = config
        self._router = router
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._clock = clock
        self._last_claim = float("-inf")

    def drain(self, timeout: float = 5.0) -> int:
        """Take what is waiting now, without blocking, until nothing is left or time is up."""
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            try:
                taken = self.step(0)
            except redis.RedisError:
                break
            total += taken
            if taken == 0:
                break
        return total

    def step(self, block_ms: int = 0) -> int:
        """Reclaim a dead process's events (now and then), then take new ones; returns how many were taken."""
        taken = 0
        now = time.monotonic()
        if now - self._last_claim >= self._claim_idle_ms / 1000 / 3:
            self._last_claim = now
            taken += self._reclaim()
        entries = self._redis.xreadgroup(self.group, self._consumer, {self.stream: ">"}, count=100,
                                         block=block_ms or None)
        read = 0
        for _stream, messages in entries or []:
            for entry_id, fields in messages:
                read += 1
                taken += self.take(entry_id, fields)
        if read:
            log.info("registry events: %d of %d new event(s) taken", taken, read)
        return taken + self.settle_due()

    def settle_due(self) -> int:
        """Announce the deletes whose gathering is over; returns how many were settled."""
        settled = 0
        for member in self._redis.zrangebyscore(PENDING_DELETES_DUE_KEY, "-inf", self._clock(), start=0, num=50):
            key = as_str(member)
            for _attempt in range(WATCH_ATTEMPTS):
                with self._redis.pipeline(transaction=True) as pipe:
                    try:
                        decision = settle(key, self._config.registries, pipe)
                        channels = self._router.channels(decision.announcement) if decision.announcement else []
                        pipe.multi()
                        self._write(pipe, decision, channels)
                        pipe.execute()
                    except redis.WatchError:
                        continue
                    except redis.RedisError:
                        raise
                    except Exception:
                        log.exception("registry events: the delete gathered under %s could not be announced; "
                                      "dropped", key)
                        self._redis.zrem(PENDING_DELETES_DUE_KEY, key)
                        break
                if decision.announcement is not None:
                    log.info("registry events: delete of %s@%s announced in %s (tags %s)",
                             decision.announcement.repository, decision.announcement.digest,
                             ", ".join(channels) or "no channel", ", ".join(decision.announcement.tags) or "none")
                settled += 1
                break
        return settled

    def _reclaim(self) -> int:
        result = self._redis.xautoclaim(self.stream, self.group, self._consumer, min_idle_time=self._claim_idle_ms,
                                        start_id="0-0", count=100)
        taken = 0
        for entry_id, fields in result[1] if result else []:
            if fields is None:  # trimmed from the stream while pending
                self._redis.xack(self.stream, self.group, entry_id)
                continue
            log.info("registry events: reclaimed %s (event %s)", entry_id, fields.get("id"))
            taken += self.take(entry_id, fields)
        return taken

    def take(self, entry_id: str, fields: dict[str, str]) -> int:
        """Decide on one stream entry and write the decision with its XACK; 1 when written, 0 when left pending."""
        try:
            event = RegistryEvent.from_fields(fields)
        except (KeyError, ValueError, TypeError):
            log.warning("registry events: entry %s is no registry event (fields %s); dropped", entry_id,
                        sorted(fields))
            self._redis.xack(self.stream, self.group, entry_id)
            return 1
        registry = self._config.registries.get(event.registry)
        if registry is None:
            log.warning("registry events: event %s names registry %r, which the config no longer has; dropped",
                        event.id, event.registry)
            self._redis.xack(self.stream, self.group, entry_id)
            return 1
        for _attempt in range(WATCH_ATTEMPTS):
            with self._redis.pipeline(transaction=True) as pipe:
                try:
                    decision = decide(event, registry, pipe)
                    channels = self._router.channels(decision.announcement) if decision.announcement else []
                    pipe.multi()
                    self._write(pipe, decision, channels)
                    pipe.xack(self.stream, self.group, entry_id)
                    pipe.execute()
                except redis.WatchError:
                    continue
                except redis.RedisError:
                    raise  # the loop backs off and the entry stays pending
                except Exception:
                    # A bug must not stall every event behind this one (it would be reclaimed first, forever).
                    log.exception("registry events: event %s could not be taken; dropped", event.id)
                    self._redis.xack(self.stream, self.group, entry_id)
                    return 1
            self._log(event, decision, channels)
            return 1
        log.warning("registry events: event %s kept changing under its decision; left for a later try", event.id)
        return 0

    def _write(self, pipe: redis.client.Pipeline, decision: Decision, channels: list[str]) -> None:
        record_changes(pipe, decision.changes)
        if decision.announcement is not None:
            now = self._clock()
            for channel in channels:
                outbox.put(pipe, channel, decision.announcement, now)
        if decision.forget:
            pipe.delete(*decision.forget)
        if decision.mark:
            pipe.set(decision.mark, "1", ex=EXPECTATION_TTL_SECONDS)
        if decision.gather is not None:
            key = decision.gather.key()
            pipe.set(key, decision.gather.to_json())
            pipe.zadd(PENDING_DELETES_DUE_KEY, {key: self._clock() + DELETE_HOLD_SECONDS}, nx=True)
        if decision.settled:
            pipe.delete(decision.settled)
            pipe.zrem(PENDING_DELETES_DUE_KEY, decision.settled)

    @staticmethod
    def _log(event: RegistryEvent, decision: Decision, channels: list[str]) -> None:
        subject = f"{event.repository}:{event.tag}" if event.tag else f"{event.repository}@{event.digest}"
        announced = decision.announcement
        if decision.gather is not None:
            outcome = f"gathered into the delete of {decision.gather.digest}"
        elif announced is not None:
            outcome = f"announced in {', '.join(channels) or 'no channel'}" + (
                f" as job {announced.job_id}" if announced.job_id else "")
        else:
            outcome = "nothing to announce"
        # DEBUG: a CI job pushing hundreds of tags would otherwise write a line each; step() sums them up.
        log.debug("registry event %s from %s: %s %s: %d history entr%s, %s", event.id, event.registry, event.action,
                 subject, len(decision.changes), "y" if len(decision.changes) == 1 else "ies", outcome)
