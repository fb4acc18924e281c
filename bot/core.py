"""The front-end-neutral parts wired together, for each process's composition root."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from bot.access import Membership, Policy
from bot.approvals import Approvals
from bot.audit import AuditLog
from bot.config import Config
from bot.metrics import Metrics
from bot.queueing import JobQueue
from bot.service import Service


@dataclass(frozen=True)
class Core:
    policy: Policy
    queue: JobQueue
    audit: AuditLog
    approvals: Approvals
    service: Service


def build_core(config: Config, text_redis: redis.Redis, bytes_redis: redis.Redis,
               membership: Membership | None = None, metrics: Metrics | None = None) -> Core:
    """``text_redis`` returns str; ``bytes_redis`` returns bytes (rq's job data is binary)."""
    policy = Policy(config.access, membership)
    queue = JobQueue(bytes_redis)
    audit = AuditLog(text_redis)
    approvals = Approvals(bytes_redis, queue, policy)
    service = Service(config, policy, queue, audit=audit, approvals=approvals, metrics=metrics)
    return Core(policy, queue, audit, approvals, service)
