"""`check-config --live` on registry events: the last envelope of each events-enabled registry, never fatal."""

from __future__ import annotations

import redis

from bot.core.event_intake import EventIntake
from bot.live_check import check_registry_events, passed
from bot.settings import Settings
from tests.support.services import RedisServer
from workers.kernel.config import Config, parse_config
from workers.kernel.keys import REGISTRY_EVENTS_LAST_KEY
from workers.kernel.secrets import Secret

NOW = 1_800_000_000.0


def config() -> Config:
    registry = {"services_hostname": "ns.example.com", "username": "ci", "password_env": "P"}
    return parse_config({"registries": {"main": {"server": "a.example.com", **registry, "events_token_env": "A"},
                                        "prod": {"server": "b.example.com", **registry, "events_token_env": "B"},
                                        "quiet": {"server": "c.example.com", **registry}},
                         "default_registry": "main", "hosts": ["build-1"]})


def settings(url: str) -> Settings:
    return Settings(slack_bot_token=None, slack_signing_secret=None, slack_api_url="", redis_url=Secret(url))


def test_each_sending_registry_says_when_its_last_envelope_came_or_that_none_did(
        redis_server: RedisServer, text_redis: redis.Redis) -> None:
    EventIntake(text_redis).store("main", [], NOW - 150)
    checks = check_registry_events(settings(redis_server.url), config(), clock=lambda: NOW)
    assert [(c.name, c.ok, c.required) for c in checks] == [("registry main events", True, False),
                                                           ("registry prod events", True, False)]
    assert checks[0].detail == "last envelope at 2027-01-15T07:57:30.000Z (2m30s ago)"
    assert checks[1].detail.startswith("none received yet")
    assert passed(checks)


def test_a_garbled_time_reads_as_none_and_redis_down_is_reported_not_fatal(
        redis_server: RedisServer, text_redis: redis.Redis) -> None:
    text_redis.hset(REGISTRY_EVENTS_LAST_KEY, "main", "yesterday")
    checks = check_registry_events(settings(redis_server.url), config())
    assert checks[0].detail.startswith("none received yet")
    down = check_registry_events(settings("redis://127.0.0.1:1/0"), config())
    assert [(c.ok, c.required) for c in down] == [(False, False), (False, False)]
    assert down[0].detail.startswith("cannot be read from Redis") and passed(down)


def test_no_sending_registry_no_check(redis_server: RedisServer) -> None:
    quiet = parse_config({"registries": {"main": {"server": "a.example.com", "services_hostname": "ns.example.com",
                                                  "username": "ci", "password_env": "P"}}, "hosts": ["b"]})
    assert check_registry_events(settings(redis_server.url), quiet) == []
