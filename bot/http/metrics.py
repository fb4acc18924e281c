"""``GET /metrics``: the Redis-kept counters (``bot.core.metrics``) in the Prometheus text format.

The counters live in Redis so that every ``serve`` process and replica reports the same
totals; a prometheus_client collector therefore reads them at scrape time instead of
keeping values of its own, and each process exposes it on a registry of its own (the
library's global default registry would add this process's Python and GC metrics, which
differ from process to process behind one address).  Every family is declared, with its
``# TYPE`` line, even before its first sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from bot.core.limits import LIMIT_NAMES
from bot.core.metrics import RAILS, Metrics, Snapshot

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What :func:`prometheus_client.generate_latest` writes: the classic text format, version 0.0.4."""


class RedisCollector(Collector):
    """The regops families, with the values Redis holds at the moment of the scrape."""

    def __init__(self, metrics: Metrics, hosts: Sequence[str]) -> None:
        self._metrics = metrics
        self._hosts = tuple(hosts)

    def describe(self) -> Iterable[Metric]:
        """The families without samples: lets the registry check names without reading Redis."""
        return _families()

    def collect(self) -> Iterator[Metric]:
        # Read before yielding anything: a Redis error then fails the scrape as a whole.
        snapshot = self._metrics.read(self._hosts)
        yield from _families(snapshot)


def _families(snapshot: Snapshot | None = None) -> list[Metric]:
    commands = CounterMetricFamily("regops_commands_total", "Commands received, by action and decision.",
                                   labels=["action", "decision"])
    jobs = CounterMetricFamily("regops_jobs_total", "Jobs ended, by action and outcome.",
                               labels=["action", "outcome"])
    durations = HistogramMetricFamily("regops_job_duration_seconds",
                                      "Run time of ended jobs (start to end), by action.", labels=["action"])
    queues = GaugeMetricFamily("regops_queue_length", "Jobs waiting in each Docker host's queue.",
                               labels=["host"])
    lag = GaugeMetricFamily("regops_relay_lag_seconds",
                            "Age of the most recent job event when the relay handled it.")
    slack_errors = CounterMetricFamily("regops_slack_api_errors_total",
                                       "Slack Web API calls that failed, by method.", labels=["method"])
    limited = CounterMetricFamily("regops_commands_limited_total",
                                  "Commands refused by a limit (its key under `limits:`), audited or not.",
                                  labels=["limit"])
    guarded = CounterMetricFamily("regops_guard_refusals_total",
                                  "Commands refused at the acknowledgement by a guard rail (freeze, immutable, "
                                  "promotion_path).", labels=["rail"])
    if snapshot is not None:
        for (action, decision), count in snapshot.commands.items():
            commands.add_metric([action, decision], count)
        for (action, outcome), count in snapshot.jobs.items():
            jobs.add_metric([action, outcome], count)
        for action, histogram in snapshot.durations.items():
            durations.add_metric([action], list(histogram.buckets), histogram.total_seconds)
        for host, length in snapshot.queue_lengths.items():
            queues.add_metric([host], length)
        if snapshot.relay_lag is not None:
            lag.add_metric([], snapshot.relay_lag)
        for method, count in snapshot.slack_errors.items():
            slack_errors.add_metric([method], count)
        # Every limit has a sample, 0 until it first refuses: an alert on its rate needs no absent() guard.
        for limit in (*LIMIT_NAMES, *(name for name in snapshot.limited if name not in LIMIT_NAMES)):
            limited.add_metric([limit], snapshot.limited.get(limit, 0.0))
        for rail in (*RAILS, *(name for name in snapshot.guarded if name not in RAILS)):
            guarded.add_metric([rail], snapshot.guarded.get(rail, 0.0))
    return [commands, jobs, durations, queues, lag, slack_errors, limited, guarded]


def metrics_registry(metrics: Metrics, hosts: Sequence[str]) -> CollectorRegistry:
    """A registry of this process's own, holding only the regops collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(metrics, hosts))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text a scrape gets; raises whatever reading Redis raised."""
    return generate_latest(registry)
