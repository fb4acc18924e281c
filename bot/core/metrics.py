"""Prometheus metrics kept in Redis, so every ``serve`` process and replica reports the same totals.

Counters are Redis hash fields incremented where the decision happens (the command's
audit transaction, the relay's handling of a job's end, a failed Slack call); gauges are
read at scrape time.  This module records and reads them back as plain values
(:class:`Snapshot`); ``bot.http.metrics`` turns a snapshot into the Prometheus exposition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import redis

from workers.kernel.jobs import JobRecord
from workers.kernel.keys import (
    METRICS_COMMANDS_KEY,
    METRICS_COUNTED_PREFIX,
    METRICS_DURATION_KEY,
    METRICS_JOBS_KEY,
    METRICS_LIMITED_KEY,
    METRICS_RELAY_LAG_KEY,
    METRICS_SLACK_ERRORS_KEY,
    PREFIX,
    job_key,
    rq_queue_key,
)
from workers.kernel.values import as_str

COUNTED_TTL_SECONDS = 7 * 24 * 3600
METRICS_GUARDED_KEY = f"{PREFIX}:metrics:guarded"
"""Hash: guard rail → commands it refused at the acknowledgement."""
RAILS = ("freeze", "immutable", "promotion_path")
"""The guard rails a command can be refused by (the ``rail`` label's values)."""
BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
BUCKET_LABELS = (*(f"{b:g}" for b in BUCKETS), "+Inf")
"""The ``le`` of each duration bucket as recorded (and exposed): ``1``, ``5``, … ``3600``, ``+Inf``."""


@dataclass(frozen=True)
class Durations:
    """One action's run-time histogram: cumulative count per ``le`` (in :data:`BUCKET_LABELS` order) and sum."""

    buckets: tuple[tuple[str, float], ...]
    total_seconds: float


@dataclass(frozen=True)
class Snapshot:
    """Every metric's current values, read from Redis in one round trip."""

    commands: Mapping[tuple[str, str], float]
    """(action, decision) → commands received."""
    jobs: Mapping[tuple[str, str], float]
    """(action, outcome) → jobs ended."""
    durations: Mapping[str, Durations]
    """action → run-time histogram."""
    queue_lengths: Mapping[str, int]
    """host → jobs waiting, in the order the hosts were asked for."""
    relay_lag: float | None
    """Seconds; None until the relay handled its first event."""
    slack_errors: Mapping[str, float]
    """Web API method → failed calls."""
    limited: Mapping[str, float] = field(default_factory=dict)
    """Limit (its key under ``limits:``) → commands it refused."""
    guarded: Mapping[str, float] = field(default_factory=dict)
    """Guard rail (:data:`RAILS`) → commands it refused at the acknowledgement."""


def _pairs(raw: Mapping) -> dict[tuple[str, str], float]:
    """``{"action|decision": "3"}`` → ``{("action", "decision"): 3.0}``, sorted by key."""
    pairs = {}
    for key, value in sorted((as_str(k), as_str(v)) for k, v in raw.items()):
        first, _, second = key.partition("|")
        pairs[(first, second)] = float(value)
    return pairs


class Metrics:
    def __init__(self, connection: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = connection
        self._clock = clock

    def command(self, action: str, decision: str, pipeline: redis.client.Pipeline | None = None) -> None:
        (pipeline if pipeline is not None else self._redis).hincrby(METRICS_COMMANDS_KEY, f"{action}|{decision}", 1)

    def limited(self, limit: str, action: str | None = None, pipeline: redis.client.Pipeline | None = None) -> None:
        """Count a command ``limit`` refused; with ``action``, in the commands counter too (a refusal
        that gets no audit entry, whose ``_record`` would have counted it)."""
        target = pipeline if pipeline is not None else self._redis.pipeline(transaction=False)
        target.hincrby(METRICS_LIMITED_KEY, limit, 1)
        if action is not None:
            target.hincrby(METRICS_COMMANDS_KEY, f"{action}|limited", 1)
        if pipeline is None:
            target.execute()

    def guarded(self, rail: str, pipeline: redis.client.Pipeline | None = None) -> None:
        """Count a command a guard rail (one of :data:`RAILS`) refused."""
        (pipeline if pipeline is not None else self._redis).hincrby(METRICS_GUARDED_KEY, rail, 1)

    def slack_error(self, method: str) -> None:
        self._redis.hincrby(METRICS_SLACK_ERRORS_KEY, method, 1)

    def relay_lag(self, event_at: float) -> None:
        self._redis.set(METRICS_RELAY_LAG_KEY, f"{max(0.0, self._clock() - event_at):.3f}")

    def job_ended(self, job_id: str) -> None:
        """Count a job's outcome once, however often its terminal event is handled."""
        if not self._redis.set(f"{METRICS_COUNTED_PREFIX}{job_id}", "1", nx=True, ex=COUNTED_TTL_SECONDS):
            return
        fields = {as_str(k): as_str(v) for k, v in self._redis.hgetall(job_key(job_id)).items()}
        if not fields:
            return
        record = JobRecord.from_fields(fields)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hincrby(METRICS_JOBS_KEY, f"{record.action}|{record.state}", 1)
        duration = record.duration
        if duration is not None:
            for bound in BUCKETS:
                if duration <= bound:
                    pipe.hincrby(METRICS_DURATION_KEY, f"{record.action}|{bound:g}", 1)
            pipe.hincrby(METRICS_DURATION_KEY, f"{record.action}|+Inf", 1)
            pipe.hincrbyfloat(METRICS_DURATION_KEY, f"{record.action}|sum", duration)
        pipe.execute()

    def read(self, hosts: Iterable[str]) -> Snapshot:
        """Every counter and gauge as it is now (for ``hosts``' queue lengths)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(METRICS_COMMANDS_KEY)
        pipe.hgetall(METRICS_JOBS_KEY)
        pipe.hgetall(METRICS_DURATION_KEY)
        pipe.hgetall(METRICS_SLACK_ERRORS_KEY)
        pipe.get(METRICS_RELAY_LAG_KEY)
        pipe.hgetall(METRICS_LIMITED_KEY)
        pipe.hgetall(METRICS_GUARDED_KEY)
        host_list = list(hosts)
        for host in host_list:
            pipe.llen(rq_queue_key(host))
        commands, jobs, durations, slack_errors, lag, limited, guarded, *lengths = pipe.execute()
        by_action: dict[str, dict[str, str]] = {}
        for key, value in ((as_str(k), as_str(v)) for k, v in durations.items()):
            action, _, part = key.partition("|")
            by_action.setdefault(action, {})[part] = value
        return Snapshot(
            commands=_pairs(commands),
            jobs=_pairs(jobs),
            durations={
                action: Durations(
                    buckets=tuple((le, float(parts.get(le, "0"))) for le in BUCKET_LABELS),
                    total_seconds=float(parts.get("sum", "0")),
                )
                for action, parts in sorted(by_action.items())
            },
            queue_lengths=dict(zip(host_list, (int(n) for n in lengths), strict=True)),
            relay_lag=float(as_str(lag)) if lag is not None else None,
            slack_errors={method: float(count) for method, count in
                          sorted((as_str(k), as_str(v)) for k, v in slack_errors.items())},
            limited={limit: float(count) for limit, count in
                     sorted((as_str(k), as_str(v)) for k, v in limited.items())},
            guarded={rail: float(count) for rail, count in
                     sorted((as_str(k), as_str(v)) for k, v in guarded.items())},
        )
