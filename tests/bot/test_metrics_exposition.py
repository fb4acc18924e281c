"""The Redis-kept counters as a scrape shows them: prometheus_client's exposition of bot.core.metrics."""

from __future__ import annotations

import io
import re

import redis
from prometheus_client import REGISTRY
from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult

from bot.core.metrics import Metrics
from bot.http.app import WebApp
from bot.http.metrics import exposition, metrics_registry
from tests.support.services import free_port
from workers.kernel.jobs import JobRecord
from workers.kernel.keys import job_key, rq_queue_key
from workers.kernel.secrets import Secret

SECRET = Secret("s" * 32)
SAMPLE = re.compile(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$")


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = SAMPLE.match(line)
            assert match, line
            found[match.group(1)] = float(match.group(2))
    return found


def ended_job(connection: redis.Redis, job_id: str, action: str, state: str, seconds: float) -> None:
    record = JobRecord(job_id=job_id, action=action, registry="main", host="build-1", requester="U0DEV1",
                       state=state, started_at=1000.0, finished_at=1000.0 + seconds)
    connection.hset(job_key(job_id), mapping=record.to_fields())


def test_every_recorded_value_is_exposed_with_todays_names_labels_and_values(text_redis: redis.Redis) -> None:
    metrics = Metrics(text_redis, clock=lambda: 2000.0)
    metrics.command("help", "answered")
    metrics.command("help", "answered")
    metrics.command("push", "denied")
    ended_job(text_redis, "job000000001", "login", "succeeded", 12.5)
    metrics.job_ended("job000000001")
    metrics.job_ended("job000000001")  # handled twice, counted once
    ended_job(text_redis, "job000000002", "push", "failed", 0.5)
    metrics.job_ended("job000000002")
    metrics.slack_error("chat.postMessage")
    metrics.relay_lag(1998.5)
    metrics.limited("queued_per_user")  # audited: its command was counted by the audit's own call
    metrics.limited("commands_per_minute", "push")  # not audited: counted as a command here
    metrics.guarded("freeze")
    metrics.guarded("freeze")
    metrics.guarded("immutable")
    text_redis.rpush(rq_queue_key("build-1"), "a", "b")

    text = exposition(metrics_registry(metrics, ["build-1", "build-2"])).decode()

    def histogram(action: str, under_five: float, count: float, total: float) -> dict[str, float]:
        bounds = ["1", "5", "15", "30", "60", "120", "300", "600", "1800", "3600", "+Inf"]
        found = {f'regops_job_duration_seconds_bucket{{action="{action}",le="{le}"}}': count for le in bounds}
        found[f'regops_job_duration_seconds_bucket{{action="{action}",le="1"}}'] = under_five
        found[f'regops_job_duration_seconds_bucket{{action="{action}",le="5"}}'] = under_five
        found[f'regops_job_duration_seconds_count{{action="{action}"}}'] = count
        found[f'regops_job_duration_seconds_sum{{action="{action}"}}'] = total
        return found

    assert samples(text) == {
        'regops_commands_total{action="help",decision="answered"}': 2,
        'regops_commands_total{action="push",decision="denied"}': 1,
        'regops_commands_total{action="push",decision="limited"}': 1,
        'regops_jobs_total{action="login",outcome="succeeded"}': 1,
        'regops_jobs_total{action="push",outcome="failed"}': 1,
        **histogram("login", 0, 1, 12.5),
        **histogram("push", 1, 1, 0.5),
        'regops_queue_length{host="build-1"}': 2,
        'regops_queue_length{host="build-2"}': 0,
        "regops_relay_lag_seconds": 1.5,
        'regops_slack_api_errors_total{method="chat.postMessage"}': 1,
        'regops_commands_limited_total{limit="commands_per_minute"}': 1,
        'regops_commands_limited_total{limit="queued_per_user"}': 1,
        'regops_commands_limited_total{limit="queued_per_host"}': 0,
        'regops_guard_refusals_total{rail="freeze"}': 2,
        'regops_guard_refusals_total{rail="immutable"}': 1,
        'regops_guard_refusals_total{rail="promotion_path"}': 0,
    }
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE)
    assert types == [("regops_commands_total", "counter"), ("regops_jobs_total", "counter"),
                     ("regops_job_duration_seconds", "histogram"), ("regops_queue_length", "gauge"),
                     ("regops_relay_lag_seconds", "gauge"), ("regops_slack_api_errors_total", "counter"),
                     ("regops_commands_limited_total", "counter"), ("regops_guard_refusals_total", "counter")]
    assert "# HELP regops_commands_total Commands received, by action and decision." in text
    # Only Redis-backed values: neither prometheus_client's process/GC collectors nor a _created sample.
    assert "process_" not in text and "python_" not in text and "_created" not in text


def test_every_family_is_declared_before_anything_was_recorded(text_redis: redis.Redis) -> None:
    text = exposition(metrics_registry(Metrics(text_redis), ["build-1"])).decode()
    assert samples(text) == {'regops_queue_length{host="build-1"}': 0,
                             **{f'regops_commands_limited_total{{limit="{limit}"}}': 0
                                for limit in ("commands_per_minute", "queued_per_user", "queued_per_host")},
                             **{f'regops_guard_refusals_total{{rail="{rail}"}}': 0
                                for rail in ("freeze", "immutable", "promotion_path")}}
    assert len(re.findall(r"^# TYPE regops_", text, re.MULTILINE)) == 8


def test_label_values_are_escaped(text_redis: redis.Redis) -> None:
    Metrics(text_redis).slack_error('odd"method\\name')
    text = exposition(metrics_registry(Metrics(text_redis), [])).decode()
    assert 'regops_slack_api_errors_total{method="odd\\"method\\\\name"} 1.0' in text


def test_each_process_has_its_own_registry(text_redis: redis.Redis) -> None:
    first = metrics_registry(Metrics(text_redis), ["build-1"])
    second = metrics_registry(Metrics(text_redis), ["build-1"])  # a second app in one process: no clash
    assert first is not second and first is not REGISTRY
    assert "regops_commands_total" not in exposition(REGISTRY).decode()


def _get(app: WebApp, path: str) -> tuple[str, dict[str, str], bytes]:
    answer: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}, start_response))
    return str(answer["status"]), dict(answer["headers"]), body  # type: ignore[call-overload]


def _bolt() -> App:
    return App(signing_secret="s" * 32, authorize=lambda **_: AuthorizeResult(bot_token="xoxb-unused"))


def test_the_web_app_serves_the_exposition_and_503_without_redis(text_redis: redis.Redis) -> None:
    Metrics(text_redis).command("help", "answered")
    status, headers, body = _get(WebApp(_bolt(), lambda: None, metrics_registry(Metrics(text_redis), []),
                                        signing_secret=SECRET),
                                 "/metrics")
    assert status == "200 OK" and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body)
    assert 'regops_commands_total{action="help",decision="answered"} 1.0' in body.decode()

    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.5, decode_responses=True)
    status, _headers, body = _get(WebApp(_bolt(), lambda: None, metrics_registry(Metrics(nowhere), []),
                                          signing_secret=SECRET),
                                  "/metrics")
    assert status.startswith("503") and b"redis unreachable" in body
