"""The ``timeouts`` and ``retries`` sections: how long a job may run, and how a worker retries it."""

from __future__ import annotations

from workers.kernel.config.model import TIMEOUT_KEYS, Retries, Timeouts
from workers.kernel.config.problems import Problems
from workers.kernel.times import format_duration

_RETRY_KEYS = ("attempts", "backoff", "max_backoff")


def parse_timeouts(problems: Problems, value: object) -> Timeouts:
    if value is None:
        return Timeouts()
    data = problems.mapping(value, "timeouts", required=(), optional=TIMEOUT_KEYS)
    if data is None:
        return Timeouts()
    values = {key: problems.duration(data[key], f"timeouts.{key}") for key in TIMEOUT_KEYS if key in data}
    return Timeouts(**{key: seconds for key, seconds in values.items() if seconds is not None})


def parse_retries(problems: Problems, value: object) -> Retries:
    if value is None:
        return Retries()
    data = problems.mapping(value, "retries", required=(), optional=_RETRY_KEYS)
    if data is None:
        return Retries()
    values: dict[str, int] = {}
    if "attempts" in data:
        attempts = problems.count(data["attempts"], "retries.attempts", "runs", " (1 means no retry)")
        if attempts is not None:
            values["attempts"] = attempts
    for key in ("backoff", "max_backoff"):
        if key in data:
            seconds = problems.duration(data[key], f"retries.{key}")
            if seconds is not None:
                values[key] = seconds
    retries = Retries(**values)
    if retries.max_backoff < retries.backoff:
        problems.add(
            "retries.max_backoff",
            f"must not be shorter than retries.backoff ({format_duration(retries.backoff)})",
        )
    return retries
