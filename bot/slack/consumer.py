"""The loop shared by the relays: one Redis consumer group over one stream, outages waited out."""

from __future__ import annotations

import logging
import threading

import redis

log = logging.getLogger(__name__)


class StreamConsumer:
    """Base of a relay: subclasses set the class attributes and implement :meth:`step`."""

    stream: str
    group: str
    start_id = "0"
    """Where a new group starts: "0" replays the stream, "$" takes only what comes next."""
    label = "relay"

    def __init__(self, connection: redis.Redis) -> None:
        self._redis = connection

    def ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block_ms: int = 0) -> int:
        raise NotImplementedError

    def run(self, stop: threading.Event, block_ms: int = 500) -> None:
        """Consume until ``stop`` is set; Redis and Slack outages are waited out, not fatal."""
        group_ready = False
        while not stop.is_set():
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                self.step(block_ms)
            except redis.RedisError as exc:
                group_ready = False  # a flushed or restarted Redis may have lost the group
                log.warning("%s: Redis unavailable (%s); retrying", self.label, type(exc).__name__)
                stop.wait(1.0)
            except Exception:
                log.exception("%s: unexpected error; continuing", self.label)
                stop.wait(1.0)
