"""The ``notifications`` section: static routes sending the registries' pushes and deletes to channels.

Each of ``notifications.routes`` names a ``channel`` (a channel ID, checked by the front end's
identity rules like ``notify_channel``) and what it follows: ``images`` and ``tags`` globs
(checked like a role's), ``events`` (``push``, ``delete``; default ``[push]``) and ``registries``
(globs that must each match a configured registry; default every registry).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers.kernel.config.identities import IdentityRules
from workers.kernel.config.model import EVENT_KINDS, NotificationRoute
from workers.kernel.config.patterns import GLOB_KEYS, check_named_globs, read_globs
from workers.kernel.config.problems import Problems, did_you_mean, join_names, kind

_ROUTE_KEYS = ("channel", "images", "tags", "events", "registries")
_ROUTE_GLOBS = tuple((key, what) for key, what in GLOB_KEYS if key in ("images", "tags"))
_CHANNEL_EXAMPLE = "C0RELEASES"


def parse_notifications(problems: Problems, value: object, registry_names: Sequence[str] | None,
                        identities: IdentityRules) -> tuple[NotificationRoute, ...]:
    """The routes; ``registry_names`` are the registries defined (None when that section is unreadable)."""
    if value is None:
        return ()
    data = problems.mapping(value, "notifications", required=(), optional=("routes",))
    if data is None or data.get("routes") is None:
        return ()
    routes = data["routes"]
    if not isinstance(routes, list):
        problems.add("notifications.routes", "must be a list of routes, each like "
                     f"{{channel: {_CHANNEL_EXAMPLE}, images: [\"**\"], tags: [\"*\"], events: [push]}}; "
                     f"got {kind(routes)}")
        return ()
    parsed = [_route(problems, item, f"notifications.routes[{index}]", registry_names, identities)
              for index, item in enumerate(routes)]
    return tuple(route for route in parsed if route is not None)


def _route(problems: Problems, value: object, path: str, registry_names: Sequence[str] | None,
           identities: IdentityRules) -> NotificationRoute | None:
    data = problems.mapping(value, path, required=("channel",), optional=_ROUTE_KEYS[1:])
    if data is None:
        return None
    before = len(problems.items)
    channel = None
    if "channel" in data:
        channel = problems.string(data["channel"], f"{path}.channel", f"a Slack channel ID like {_CHANNEL_EXAMPLE}")
        if channel is not None and (problem := identities.channel(channel, _CHANNEL_EXAMPLE)) is not None:
            problems.add(f"{path}.channel", problem)
    globs = read_globs(problems, data, path, _ROUTE_GLOBS)
    events = _events(problems, data["events"], f"{path}.events") if "events" in data else None
    registries = None
    if "registries" in data:
        registries = problems.strings(data["registries"], f"{path}.registries", 'registry names, like ["main"]')
        if registries is not None:
            check_named_globs(problems, registries, f"{path}.registries", registry_names, "registry")
    if len(problems.items) > before or channel is None:
        return None
    values: dict[str, Any] = dict(globs)
    if events is not None:
        values["events"] = events
    if registries is not None:
        values["registries"] = registries
    return NotificationRoute(channel=channel, **values)


def _events(problems: Problems, value: object, path: str) -> frozenset[str] | None:
    names = problems.strings(value, path, f"event kinds: {join_names(EVENT_KINDS)}")
    if names is None:
        return None
    ok = True
    for index, name in enumerate(names):
        if name not in EVENT_KINDS:
            problems.add(f"{path}[{index}]", f"`{name}` is no event kind; {did_you_mean(name, EVENT_KINDS)}"
                         f"give {join_names(EVENT_KINDS)}")
            ok = False
    return frozenset(names) if ok else None
