"""`regops check-config --live` against real Redis, dockerd, registry and the Slack stand-in."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.services import DockerEngine, RedisServer, Registry, free_port
from tests.support.slack_standin import SlackStandIn

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-live-check-token"


def config(tmp_path: Path, registry: Registry, default: str = "main") -> Path:
    path = tmp_path / "regops.yaml"
    path.write_text(textwrap.dedent(f"""\
        registries:
          main:
            server: {registry.server}
            services_hostname: namespace.example.com
            username: {registry.username}
            password_env: MAIN_PASSWORD
          spare:
            server: 127.0.0.1:{free_port()}
            services_hostname: namespace.example.com
            username: nobody
            password_env: SPARE_PASSWORD
        default_registry: {default}
        hosts: [build-1]
        """))
    return path


def live(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "--config", str(path), "check-config", "--live"],
                          capture_output=True, text=True, timeout=180, cwd=ROOT, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env})


@pytest.fixture
def slack() -> SlackStandIn:
    with SlackStandIn(TOKEN) as standin:
        yield standin


def base_env(redis_server: RedisServer, engine: DockerEngine, registry: Registry, slack: SlackStandIn
             ) -> dict[str, str]:
    return {"REDIS_URL": redis_server.url, "SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.api_url,
            "DOCKER_HOST": engine.host, "MAIN_PASSWORD": registry.password, "SPARE_PASSWORD": "spare-secret"}


def test_everything_reachable_passes_and_a_failing_spare_registry_is_reported_not_fatal(
        tmp_path: Path, redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry,
        slack: SlackStandIn) -> None:
    result = live(config(tmp_path, registry), base_env(redis_server, docker_engine, registry, slack))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for line in ("redis: ok", "slack: ok", "docker engine: ok", "registry main: ok",
                 "registry spare: failed (not fatal)"):
        assert line in out, out
    assert "live checks ok" in out
    assert registry.password not in out + result.stderr and "spare-secret" not in out + result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-wrong"}, "slack: FAILED"),
        ({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "redis: FAILED"),
        ({"MAIN_PASSWORD": "not-the-password"}, "registry main: FAILED"),
        ({"DOCKER_HOST": "unix:///tmp/regops-no-such-engine.sock"}, "docker engine: FAILED"),
    ],
)
def test_a_required_dependency_that_fails_is_named_and_exits_1(
        tmp_path: Path, redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry,
        slack: SlackStandIn, change: dict[str, str], expected: str) -> None:
    env = {**base_env(redis_server, docker_engine, registry, slack), **change}
    result = live(config(tmp_path, registry), env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout and "live checks FAILED" in result.stdout
    assert "not-the-password" not in result.stdout + result.stderr
