"""Channel subscriptions made from Slack (``/registry subscribe``), kept in Redis.

A subscription is a route a channel made for itself: the same globs as a static route
(:class:`~workers.kernel.config.model.NotificationRoute`), one registry or all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workers.kernel.config.model import NotificationRoute


@dataclass(frozen=True)
class Subscription:
    """``id`` like ``S3``; ``registry`` None: every registry; ``who`` the Slack user who made it, ``at`` when."""

    id: str
    channel: str
    images: tuple[str, ...]
    tags: tuple[str, ...] = ("*",)
    events: frozenset[str] = frozenset({"push"})
    registry: str | None = None
    who: str = ""
    at: float = 0.0

    def route(self) -> NotificationRoute:
        """The subscription as a route (what :mod:`bot.core.routing` matches)."""
        return NotificationRoute(channel=self.channel, images=self.images, tags=self.tags, events=self.events,
                                 registries=(self.registry,) if self.registry else ("*",))

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "channel": self.channel, "images": list(self.images),
                           "tags": list(self.tags), "events": sorted(self.events), "registry": self.registry,
                           "who": self.who, "at": self.at}, sort_keys=True)

    @classmethod
    def from_json(cls, value: str | bytes) -> Subscription:
        data: dict[str, Any] = json.loads(value)
        return cls(id=str(data["id"]), channel=str(data["channel"]), images=tuple(data["images"]),
                   tags=tuple(data.get("tags", ("*",))), events=frozenset(data.get("events", ("push",))),
                   registry=data.get("registry"), who=str(data.get("who", "")), at=float(data.get("at", 0.0)))
