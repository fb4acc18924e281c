"""The core service wired on a test's Redis, for bot-side tests of the service path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

from bot.core.assembly import build_core
from bot.core.metrics import Metrics
from bot.core.service import Service
from workers.kernel.config import parse_config


def bytes_redis(connection: redis.Redis) -> redis.Redis:
    """A bytes connection to the same database (rq needs one)."""
    kwargs = connection.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))


def make_service(document: Mapping[str, Any], connection: redis.Redis, *, limits: bool = False,
                 metrics: Metrics | None = None) -> Service:
    """The core wired on ``connection`` for the config ``document``; job ids 000000000001, 000000000002, …

    With ``limits`` the config's per-person limits apply too (the core's :class:`Limiter`); ``metrics`` counts.
    """
    config = parse_config(document)
    ids = iter(f"{n:012x}" for n in range(1, 1000))
    core = build_core(config, connection, bytes_redis(connection))
    return Service(config, core.policy, core.queue, audit=core.audit, approvals=core.approvals,
                   jobs=core.jobs, job_ids=lambda: next(ids), limits=core.limits if limits else None,
                   subscriptions=core.subscriptions, metrics=metrics)
