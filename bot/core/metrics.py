"""Prometheus metrics kept in Redis, so every ``serve`` process and replica reports the same totals.

Counters are Redis hash fields incremented where the decision happens (the command's
audit transaction, the relay's handling of a job's end, a failed Slack call); gauges are
read at scrape time.  Every family is declared, with its ``# TYPE`` line, even before
its first sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import redis

from workers.kernel.jobs import JobRecord
from workers.kernel.keys import (
    METRICS_COMMANDS_KEY,
    METRICS_COUNTED_PREFIX,
    METRICS_DURATION_KEY,
    METRICS_JOBS_KEY,
    METRICS_RELAY_LAG_KEY,
    METRICS_SLACK_ERRORS_KEY,
    job_key,
    rq_queue_key,
)
from workers.kernel.values import as_str

COUNTED_TTL_SECONDS = 7 * 24 * 3600
BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

FAMILIES = (
    ("regops_commands_total", "counter", "Commands received, by action and decision."),
    ("regops_jobs_total", "counter", "Jobs ended, by action and outcome."),
    ("regops_job_duration_seconds", "histogram", "Run time of ended jobs (start to end), by action."),
    ("regops_queue_length", "gauge", "Jobs waiting in each Docker host's queue."),
    ("regops_relay_lag_seconds", "gauge", "Age of the most recent job event when the relay handled it."),
    ("regops_slack_api_errors_total", "counter", "Slack Web API calls that failed, by method."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self, connection: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = connection
        self._clock = clock

    def command(self, action: str, decision: str, pipeline: redis.client.Pipeline | None = None) -> None:
        (pipeline if pipeline is not None else self._redis).hincrby(METRICS_COMMANDS_KEY, f"{action}|{decision}", 1)

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

    def render(self, hosts: Iterable[str]) -> str:
        """The Prometheus text exposition of every family."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(METRICS_COMMANDS_KEY)
        pipe.hgetall(METRICS_JOBS_KEY)
        pipe.hgetall(METRICS_DURATION_KEY)
        pipe.hgetall(METRICS_SLACK_ERRORS_KEY)
        pipe.get(METRICS_RELAY_LAG_KEY)
        host_list = list(hosts)
        for host in host_list:
            pipe.llen(rq_queue_key(host))
        commands, jobs, durations, slack_errors, lag, *lengths = pipe.execute()
        samples: dict[str, list[str]] = {name: [] for name, _kind, _help in FAMILIES}
        for key, value in sorted((as_str(k), as_str(v)) for k, v in commands.items()):
            action, _, decision = key.partition("|")
            samples["regops_commands_total"].append(
                f'regops_commands_total{{action="{_label(action)}",decision="{_label(decision)}"}} {value}')
        for key, value in sorted((as_str(k), as_str(v)) for k, v in jobs.items()):
            action, _, outcome = key.partition("|")
            samples["regops_jobs_total"].append(
                f'regops_jobs_total{{action="{_label(action)}",outcome="{_label(outcome)}"}} {value}')
        by_action: dict[str, dict[str, str]] = {}
        for key, value in ((as_str(k), as_str(v)) for k, v in durations.items()):
            action, _, part = key.partition("|")
            by_action.setdefault(action, {})[part] = value
        for action in sorted(by_action):
            parts = by_action[action]
            for bound in (*(f"{b:g}" for b in BUCKETS), "+Inf"):
                samples["regops_job_duration_seconds"].append(
                    f'regops_job_duration_seconds_bucket{{action="{_label(action)}",le="{bound}"}} '
                    f'{parts.get(bound, "0")}')
            samples["regops_job_duration_seconds"].append(
                f'regops_job_duration_seconds_sum{{action="{_label(action)}"}} {parts.get("sum", "0")}')
            samples["regops_job_duration_seconds"].append(
                f'regops_job_duration_seconds_count{{action="{_label(action)}"}} {parts.get("+Inf", "0")}')
        for host, length in zip(host_list, lengths, strict=True):
            samples["regops_queue_length"].append(f'regops_queue_length{{host="{_label(host)}"}} {length}')
        if lag is not None:
            samples["regops_relay_lag_seconds"].append(f"regops_relay_lag_seconds {as_str(lag)}")
        for key, value in sorted((as_str(k), as_str(v)) for k, v in slack_errors.items()):
            samples["regops_slack_api_errors_total"].append(
                f'regops_slack_api_errors_total{{method="{_label(key)}"}} {value}')
        lines: list[str] = []
        for name, kind, help_text in FAMILIES:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples[name])
        return "\n".join(lines) + "\n"
