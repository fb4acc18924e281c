"""Channel subscriptions made from Slack (``/registry subscribe``), kept in Redis: the value and its store.

A subscription is a route a channel made for itself: the same globs as a static route
(:class:`~workers.kernel.config.model.NotificationRoute`), one registry or all.  The store is
Redis only (no Slack call), so a subscription is made within the command's acknowledgement.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import redis

from workers.kernel.config.model import NotificationRoute
from workers.kernel.keys import SUBSCRIPTION_IDS_KEY, SUBSCRIPTIONS_KEY
from workers.kernel.values import as_str

log = logging.getLogger(__name__)


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


MAX_PER_CHANNEL = 50
"""How many subscriptions one channel may have: enough for any team, few enough to read in one answer."""

_ID = re.compile(r"S([1-9][0-9]*)")


def _order(subscription: Subscription) -> tuple[int, str]:
    """Subscriptions in the order they were made (``S2`` before ``S10``)."""
    number = _ID.fullmatch(subscription.id)
    return (int(number.group(1)) if number else 0, subscription.id)


class SubscriptionError(Exception):
    """Why a subscription was not made or removed; nothing was written (:mod:`bot.core.subscription_views`
    says it in words)."""


class TooManySubscriptions(SubscriptionError):
    def __init__(self, channel: str, limit: int) -> None:
        super().__init__(f"channel {channel} has {limit} subscriptions already")
        self.channel = channel
        self.limit = limit


class AlreadySubscribed(SubscriptionError):
    """The channel has a subscription with the same globs, events and registry already."""

    def __init__(self, existing: Subscription) -> None:
        super().__init__(f"same as {existing.id}")
        self.existing = existing


class OtherChannel(SubscriptionError):
    """The id names a subscription of another channel: it is removed there, not here."""

    def __init__(self, subscription: Subscription) -> None:
        super().__init__(f"{subscription.id} belongs to {subscription.channel}")
        self.subscription = subscription


OnWrite = Callable[["redis.client.Pipeline", list[Subscription]], None]
"""Called inside the transaction that writes subscriptions, to queue more writes there (the audit entry)."""


class SubscriptionStore:
    """The subscriptions in Redis: one hash (:data:`~workers.kernel.keys.SUBSCRIPTIONS_KEY`), id → JSON.

    ``connection`` answers str (``decode_responses=True``, as the bot's text client does).  Changes are
    made in a transaction watching the hash, so the per-channel cap and the duplicate check hold against
    concurrent commands; reading is one HGETALL.
    """

    def __init__(self, connection: redis.Redis, per_channel: int = MAX_PER_CHANNEL) -> None:
        self._redis = connection
        self._per_channel = per_channel
        self._reported: set[str] = set()

    @property
    def per_channel(self) -> int:
        return self._per_channel

    def add(self, channel: str, images: tuple[str, ...], tags: tuple[str, ...], events: Collection[str],
            registry: str | None, who: str, now: float, *, on_write: OnWrite | None = None) -> Subscription:
        """A new subscription ``S<n>`` of ``channel``, stored; TooManySubscriptions or AlreadySubscribed if not.

        ``on_write`` queues further writes (an audit entry) in the same transaction.
        """
        wanted = Subscription(id="", channel=channel, images=tuple(images), tags=tuple(tags) or ("*",),
                              events=frozenset(events) or frozenset({"push"}), registry=registry, who=who, at=now)
        wanted.route()  # a value no router could read is refused here, not found later

        def write(pipe: redis.client.Pipeline) -> Subscription:
            mine = [item for item in self._read_all(pipe.hgetall(SUBSCRIPTIONS_KEY)) if item.channel == channel]
            same = next((item for item in mine if _same(item, wanted)), None)
            if same is not None:
                raise AlreadySubscribed(same)
            if len(mine) >= self._per_channel:
                raise TooManySubscriptions(channel, self._per_channel)
            made = replace(wanted, id=f"S{int(pipe.incr(SUBSCRIPTION_IDS_KEY))}")
            pipe.multi()
            pipe.hset(SUBSCRIPTIONS_KEY, made.id, made.to_json())
            if on_write is not None:
                on_write(pipe, [made])
            return made

        made: Subscription = self._redis.transaction(write, SUBSCRIPTIONS_KEY, value_from_callable=True)
        log.info("subscription added id=%s channel=%s images=%s tags=%s events=%s registry=%s who=%s", made.id,
                 channel, ",".join(made.images), ",".join(made.tags), ",".join(sorted(made.events)),
                 made.registry or "*", who)
        return made

    def remove(self, channel: str, id_or_glob: str, *, before: Callable[[list[Subscription]], None] | None = None,
               on_write: OnWrite | None = None) -> list[Subscription]:
        """Remove the subscription ``id_or_glob`` (``S3``), or every one of ``channel`` with that image glob.

        Only ``channel``'s own subscriptions are removed: an id of another channel's raises OtherChannel.
        Returns what was removed (nothing: none matched).  ``before`` sees what would be removed and may
        raise, and then nothing is; ``on_write`` as for :meth:`add`, only when something is removed.
        """
        def write(pipe: redis.client.Pipeline) -> list[Subscription]:
            if _ID.fullmatch(id_or_glob):
                raw = pipe.hget(SUBSCRIPTIONS_KEY, id_or_glob)
                found = self._read_all({id_or_glob: raw} if raw is not None else {})
                for item in found:
                    if item.channel != channel:
                        raise OtherChannel(item)
            else:
                found = [item for item in self._read_all(pipe.hgetall(SUBSCRIPTIONS_KEY))
                         if item.channel == channel and ",".join(item.images) == id_or_glob]
            if not found:
                pipe.unwatch()
                return []
            if before is not None:
                before(found)
            pipe.multi()
            pipe.hdel(SUBSCRIPTIONS_KEY, *(item.id for item in found))
            if on_write is not None:
                on_write(pipe, found)
            return found

        removed: list[Subscription] = self._redis.transaction(write, SUBSCRIPTIONS_KEY, value_from_callable=True)
        if removed:
            log.info("subscriptions removed ids=%s channel=%s", ",".join(item.id for item in removed), channel)
        return removed

    def for_channel(self, channel: str) -> list[Subscription]:
        """``channel``'s subscriptions, oldest first."""
        return [item for item in self.all() if item.channel == channel]

    def all(self) -> list[Subscription]:
        """Every readable subscription, oldest first: one HGETALL (the router reads this for every event)."""
        return self._read_all(self._redis.hgetall(SUBSCRIPTIONS_KEY))

    def _read_all(self, raw: Mapping[Any, Any]) -> list[Subscription]:
        found = []
        for key, value in raw.items():
            subscription = self._read(as_str(key), value)
            if subscription is not None:
                found.append(subscription)
        return sorted(found, key=_order)

    def _read(self, key: str, value: Any) -> Subscription | None:
        """One stored subscription, or None (logged once per entry) when it cannot be read."""
        try:
            subscription = Subscription.from_json(value)
            subscription.route()
            if subscription.id != key or not subscription.channel or not subscription.images:
                raise ValueError("id, channel or images")
            return subscription
        except (ValueError, KeyError, TypeError, AttributeError):
            if key not in self._reported:
                self._reported.add(key)
                log.warning("subscription %s in %s is unreadable and skipped", key, SUBSCRIPTIONS_KEY)
            return None


def _same(one: Subscription, other: Subscription) -> bool:
    """Whether two subscriptions announce the same changes in the same channel."""
    return (one.channel, one.images, one.tags, one.events, one.registry) == \
        (other.channel, other.images, other.tags, other.events, other.registry)
