"""The /metrics bearer token: its config keys, its summary line, reading it, and the web app's check."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry
from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult

from bot.http.app import WebApp
from bot.settings import read_metrics_token
from workers.kernel.config import MetricsToken, parse_config
from workers.kernel.errors import ConfigError
from workers.kernel.secrets import Secret


def _base(**extra: Any) -> dict[str, Any]:
    return {"registries": {"main": {"server": "r.example.com:5000", "services_hostname": "ns.example.com",
                                    "username": "ci", "password_env": "REGISTRY_PASSWORD"}},
            "hosts": ["build-1"], **extra}


def _problems(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_the_keys_name_where_the_token_is_and_the_summary_says_so() -> None:
    assert parse_config(_base()).metrics_token is None
    assert "metrics: open" in parse_config(_base()).summary()
    config = parse_config(_base(metrics_token_env="REGOPS_METRICS_TOKEN"))
    assert config.metrics_token == MetricsToken(env="REGOPS_METRICS_TOKEN")
    assert "metrics: protected, a bearer token from environment variable REGOPS_METRICS_TOKEN" in config.summary()
    config = parse_config(_base(metrics_token_file="/run/secrets/metrics-token"))
    assert "metrics: protected, a bearer token from file /run/secrets/metrics-token" in config.summary()


def test_a_token_pasted_as_the_variable_name_is_refused_without_echoing_it() -> None:
    problems = _problems(_base(metrics_token_env="s3cr3t token!"))
    assert len(problems) == 1 and "metrics_token_env" in problems[0] and "s3cr3t" not in problems[0]
    assert any("not both" in p for p in _problems(_base(metrics_token_env="A", metrics_token_file="/x")))
    assert any("metrics_token_env" in p for p in _problems(_base(metrics_token_env=5)))


def test_reading_the_token(tmp_path: Path) -> None:
    assert read_metrics_token(None, {}) is None
    assert read_metrics_token(MetricsToken(env="T"), {"T": " tok-1 \n"}) == Secret("tok-1")
    with pytest.raises(ValueError, match="empty: set environment variable T"):
        read_metrics_token(MetricsToken(env="T"), {})
    path = tmp_path / "token"
    path.write_text("tok-2\n")
    assert read_metrics_token(MetricsToken(file=str(path)), {}) == Secret("tok-2")
    with pytest.raises(ValueError, match="cannot be read from file"):
        read_metrics_token(MetricsToken(file=str(tmp_path / "missing")), {})


class CountingRegistry(CollectorRegistry):
    def __init__(self) -> None:
        super().__init__()
        self.collected = 0

    def collect(self) -> Any:
        self.collected += 1
        return iter(())


def _get(app: WebApp, authorization: str | None) -> str:
    environ: dict[str, Any] = {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    answer: dict[str, str] = {}
    b"".join(app(environ, lambda status, headers: answer.update(status=status)))
    return answer["status"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong", "Basic tok-3", "Bearer tok-3x",
                                           "Bearer tok-", "tok-3", "Bearer tök-3"])
def test_without_the_right_token_the_answer_is_401_and_nothing_is_collected(authorization: str | None) -> None:
    registry = CountingRegistry()
    bolt = App(signing_secret="s" * 32, authorize=lambda **_: AuthorizeResult(bot_token="xoxb-unused"))
    app = WebApp(bolt, lambda: None, registry, signing_secret=Secret("s" * 32), metrics_token=Secret("tok-3"))
    assert _get(app, authorization).startswith("401")
    assert registry.collected == 0
    assert _get(app, "Bearer tok-3").startswith("200") and _get(app, "bearer   tok-3 ").startswith("200")
    assert registry.collected == 2
