"""The front-end-neutral parts wired together, for each process's composition root."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from bot.core.access import Membership, Policy
from bot.core.approvals import Approvals
from bot.core.audit import AuditLog
from bot.core.jobs import Jobs
from bot.core.limits import Limiter
from bot.core.metrics import Metrics
from bot.core.queueing import JobQueue
from bot.core.service import Service
from bot.core.subscriptions import SubscriptionStore
from workers.kernel.config import Config


@dataclass(frozen=True)
class Core:
    policy: Policy
    queue: JobQueue
    audit: AuditLog
    approvals: Approvals
    jobs: Jobs
    service: Service
    limits: Limiter
    subscriptions: SubscriptionStore


def build_core(config: Config, text_redis: redis.Redis, bytes_redis: redis.Redis,
               membership: Membership | None = None, metrics: Metrics | None = None) -> Core:
    """``text_redis`` returns str; ``bytes_redis`` returns bytes (rq's job data is binary)."""
    policy = Policy(config.access, membership)
    queue = JobQueue(bytes_redis)
    audit = AuditLog(text_redis)
    approvals = Approvals(bytes_redis, queue, policy)
    jobs = Jobs(bytes_redis, queue, policy, config)
    limits = Limiter(bytes_redis, config.limits, policy)
    subscriptions = SubscriptionStore(text_redis)
    service = Service(config, policy, queue, audit=audit, approvals=approvals, jobs=jobs, metrics=metrics,
                      limits=limits, subscriptions=subscriptions)
    return Core(policy, queue, audit, approvals, jobs, service, limits, subscriptions)
