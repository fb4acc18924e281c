"""Fixtures for bot-side tests on real Redis with the Slack stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn

BOT_TOKEN = "xoxb-relay-test-token"


@pytest.fixture
def text_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A flushed database with str responses, as the bot uses."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(BOT_TOKEN) as standin:
        yield standin

