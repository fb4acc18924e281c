"""Routing: which channels an announcement goes to, each once, from routes, notify_channel and subscriptions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core.announcements import Announcement
from bot.core.routing import Router, event_registries, image_of
from bot.core.subscriptions import Subscription
from workers.kernel.config import parse_config
from workers.kernel.config.model import NotificationRoute

NAMESPACE = "com.example.namespace"
CONFIG = {
    "registries": {
        "main": {"server": "registry.example.com", "services_hostname": "namespace.example.com",
                 "username": "u", "password_env": "REGISTRY_PASSWORD"},
        "prod": {"server": "prod.example.com", "services_hostname": "namespace.example.com",
                 "username": "u", "password_env": "PROD_PASSWORD"},
    },
    "default_registry": "main",
    "hosts": ["build-1"],
    "access": {"roles": {"admin": {"actions": ["*"]}}, "grants": [{"role": "admin", "users": ["U0ADMIN"]}]},
}


def config(notify: str | None = None, *routes: NotificationRoute):
    return replace(parse_config({**CONFIG, **({"notify_channel": notify} if notify else {})}), routes=routes)


def push(image: str = "centos7-elasticsearch", tag: str = "latest", registry: str = "main",
         repository: str | None = None) -> Announcement:
    return Announcement(kind="push", registry=registry, server="registry.example.com",
                        repository=repository or f"{NAMESPACE}/{image}", tags=(tag,), digest="sha256:" + "a" * 64,
                        at=1.0)


def delete(tags: tuple[str, ...], image: str = "centos7-kibana") -> Announcement:
    return Announcement(kind="delete", registry="main", server="registry.example.com",
                        repository=f"{NAMESPACE}/{image}", tags=tags, digest="sha256:" + "b" * 64, at=1.0)


SEARCH = NotificationRoute(channel="C0SEARCH", images=("centos7-elasticsearch", "centos7-kibana"), tags=("*",),
                           events=frozenset({"push", "delete"}))
RELEASES = NotificationRoute(channel="C0RELEASES", images=("*",), tags=("v*", "latest"))


@pytest.mark.parametrize("repository,expected", [
    (f"{NAMESPACE}/centos7-app", "centos7-app"),
    (f"{NAMESPACE}/team/app", "team/app"),
    ("other.namespace/app", "other.namespace/app"),
    (NAMESPACE, NAMESPACE),
])
def test_the_image_is_the_path_after_the_namespace(repository: str, expected: str) -> None:
    assert image_of(repository, NAMESPACE) == expected


@pytest.mark.parametrize("announcement,channels", [
    (push("centos7-elasticsearch", "latest"), ["C0SEARCH", "C0RELEASES", "C0DEPLOYS"]),
    (push("centos7-elasticsearch", "dev-42"), ["C0SEARCH", "C0DEPLOYS"]),
    (push("centos7-app", "v1.2"), ["C0RELEASES", "C0DEPLOYS"]),
    (push("centos7-app", "dev-42"), ["C0DEPLOYS"]),
    (push("team/app", "v1"), ["C0DEPLOYS"]),  # `*` stops at `/`
    (push(repository="elsewhere/centos7-kibana", tag="v1"), ["C0DEPLOYS"]),  # outside the namespace: whole path
    (delete(("old",)), ["C0SEARCH"]),  # notify_channel and RELEASES take pushes only
    (delete(()), ["C0SEARCH"]),  # no tag known: a route of every tag takes it
    (delete(("dev", "v2"), image="centos7-app"), []),
])
def test_routes_match_by_image_tag_and_event(announcement: Announcement, channels: list[str]) -> None:
    assert Router(config("C0DEPLOYS", SEARCH, RELEASES)).channels(announcement) == channels


def test_a_delete_naming_no_tag_goes_only_to_routes_of_every_tag() -> None:
    some = NotificationRoute(channel="C0SOME", images=("**",), tags=("v*",), events=frozenset({"delete"}))
    every = NotificationRoute(channel="C0EVERY", images=("**",), tags=("*",), events=frozenset({"delete"}))
    router = Router(config(None, some, every))
    assert router.channels(delete(())) == ["C0EVERY"]
    assert router.channels(delete(("v1",))) == ["C0SOME", "C0EVERY"]


def test_registries_are_matched_by_their_config_name() -> None:
    prod_only = NotificationRoute(channel="C0PROD", registries=("prod",))
    router = Router(config(None, prod_only))
    assert router.channels(push(registry="prod")) == ["C0PROD"]
    assert router.channels(push(registry="main")) == []


def test_each_channel_is_named_once_whatever_matches_it() -> None:
    subscriptions = [
        Subscription(id="S1", channel="C0SEARCH", images=("centos7-*",)),
        Subscription(id="S2", channel="C0TEAM", images=("**",), tags=("latest",), registry="main"),
        Subscription(id="S3", channel="C0TEAM", images=("centos7-elasticsearch",)),
        Subscription(id="S4", channel="C0PRODONLY", images=("**",), registry="prod"),
        Subscription(id="S5", channel="C0DELETES", images=("**",), events=frozenset({"delete"})),
    ]
    router = Router(config("C0SEARCH", SEARCH, RELEASES, replace(SEARCH, channel="C0RELEASES")),
                    lambda: subscriptions)
    assert router.channels(push("centos7-elasticsearch", "latest")) == ["C0SEARCH", "C0RELEASES", "C0TEAM"]
    assert router.channels(delete(("x",))) == ["C0SEARCH", "C0RELEASES", "C0DELETES"]


def test_subscriptions_are_read_at_each_announcement() -> None:
    subscriptions: list[Subscription] = []
    router = Router(config(), lambda: subscriptions)
    assert router.channels(push()) == []
    subscriptions.append(Subscription(id="S1", channel="C0NEW", images=("centos7-*",)))
    assert router.channels(push()) == ["C0NEW"]


def test_without_routes_or_notify_channel_nothing_is_routed() -> None:
    assert Router(config()).channels(push()) == []


def test_event_registries_are_those_with_an_events_token() -> None:
    document = {**CONFIG, "registries": {**CONFIG["registries"]}}
    plain = parse_config(document)
    assert event_registries(plain) == frozenset()
    main = replace(plain.registries["main"], events_token_env="REGISTRY_EVENTS_TOKEN")
    assert event_registries(replace(plain, registries={**plain.registries, "main": main})) == {"main"}
