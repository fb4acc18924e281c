"""Which channels an announcement goes to: the static routes, ``notify_channel``, and the subscriptions.

A route matches an announcement when its registries, images, tags and events all do
(:class:`~workers.kernel.config.model.NotificationRoute`); each channel is named once, however
many of its routes match, so a channel gets at most one message per change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bot.core.announcements import Announcement
from bot.core.subscriptions import Subscription
from workers.kernel.config import Config
from workers.kernel.config.model import NotificationRoute
from workers.kernel.config.patterns import matches_any

ALL_TAGS = "*"


def image_of(repository: str, namespace: str) -> str:
    """The image name a route's ``images`` match: the path after ``namespace/``, else the whole path."""
    prefix = f"{namespace}/" if namespace else ""
    if prefix and repository.startswith(prefix) and len(repository) > len(prefix):
        return repository[len(prefix):]
    return repository


def route_matches(route: NotificationRoute, announcement: Announcement, image: str) -> bool:
    """Whether ``route`` takes ``announcement`` of ``image``."""
    if announcement.kind not in route.events:
        return False
    if not matches_any(announcement.registry, route.registries) or not matches_any(image, route.images):
        return False
    if not announcement.tags:
        # A delete naming no tag: only a route taking every tag can be sure it wants it.
        return ALL_TAGS in route.tags or "**" in route.tags
    return any(matches_any(tag, route.tags) for tag in announcement.tags)


class Router:
    """The channels of an announcement, from ``config`` and the subscriptions of the moment."""

    def __init__(self, config: Config, subscriptions: Callable[[], Iterable[Subscription]] = tuple) -> None:
        self._config = config
        self._subscriptions = subscriptions
        notify = (NotificationRoute(channel=config.notify_channel),) if config.notify_channel else ()
        self._static = (*config.routes, *notify)

    def routes(self) -> list[NotificationRoute]:
        """Every route now: the static ones, ``notify_channel``'s, then each subscription's."""
        return [*self._static, *(subscription.route() for subscription in self._subscriptions())]

    def channels(self, announcement: Announcement) -> list[str]:
        """The channels ``announcement`` goes to, each once, in the order of their first matching route."""
        registry = self._config.registries.get(announcement.registry)
        image = image_of(announcement.repository, registry.namespace if registry else "")
        channels: dict[str, None] = {}
        for route in self.routes():
            if route.channel not in channels and route_matches(route, announcement, image):
                channels[route.channel] = None
        return list(channels)


def event_registries(config: Config) -> frozenset[str]:
    """The registries whose changes their own events announce (the relay announces the others' job changes)."""
    return frozenset(name for name, registry in config.registries.items() if registry.events_enabled)

