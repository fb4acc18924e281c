"""Redis clients for the bot's processes (serve, shell, audit), built from the settings in one way."""

from __future__ import annotations

import redis

from bot.settings import Settings


def redis_client(settings: Settings, timeout: float = 5.0, *, decode: bool = True) -> redis.Redis:
    """A Redis client for the bot: str responses by default, bytes for rq (``decode=False``)."""
    return redis.Redis.from_url(settings.redis_url.reveal(), decode_responses=decode,
                                socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30)
