"""`regops check-config --live`: are Redis, Slack, the Docker engine and the registries reachable?

The Docker side runs as ``python -m workers.check`` in a child process, so the bot
package still never imports the Docker SDK.  Every check is reported by name as ``ok``
or with its reason; the verdict needs Redis, Slack, the engine and the default
registry, while another registry's failure is reported but not fatal.  For each registry
that sends its events, when its last envelope came (never fatal: none may have come yet).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import redis
from slack_sdk.errors import SlackApiError

from bot.settings import Settings, mask_url
from bot.slack.client import build_web_client
from workers.kernel.config import Config
from workers.kernel.keys import REGISTRY_EVENTS_LAST_KEY
from workers.kernel.times import format_duration, iso_time


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def check_redis(settings: Settings) -> Check:
    client = redis.Redis.from_url(settings.redis_url.reveal(), socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
        return Check("redis", True, f"PING answered at {mask_url(settings.redis_url.reveal())}")
    except redis.AuthenticationError:
        return Check("redis", False, "authentication failed (check the password or ACL user in REDIS_URL)")
    except redis.RedisError as exc:
        return Check("redis", False, f"unreachable ({type(exc).__name__}) at {settings.redis_url_masked}")
    finally:
        client.close()


def check_slack(settings: Settings) -> Check:
    if settings.slack_bot_token is None:
        return Check("slack", False, "SLACK_BOT_TOKEN is not set")
    client = build_web_client(settings.slack_bot_token, settings.slack_api_url, timeout=10)
    try:
        answer = client.auth_test()
        return Check("slack", True, f"auth.test ok: bot {answer.get('user_id')} in team {answer.get('team_id')}")
    except SlackApiError as exc:
        return Check("slack", False, f"auth.test failed: {exc.response.get('error', 'error')}")
    except OSError as exc:
        return Check("slack", False, f"unreachable ({type(exc).__name__}) at {settings.slack_api_url}")


def check_registry_events(settings: Settings, config: Config,
                          clock: Callable[[], float] = time.time) -> list[Check]:
    """For each registry with an events token: when regops last took an envelope from it (never fatal)."""
    names = [name for name, registry in config.registries.items() if registry.events_enabled]
    if not names:
        return []
    client = redis.Redis.from_url(settings.redis_url.reveal(), socket_timeout=5, socket_connect_timeout=5,
                                  decode_responses=True)
    try:
        last = client.hmget(REGISTRY_EVENTS_LAST_KEY, names)
    except redis.RedisError as exc:
        return [Check(f"registry {name} events", False, f"cannot be read from Redis ({type(exc).__name__})",
                      required=False) for name in names]
    finally:
        client.close()
    checks = []
    for name, value in zip(names, last, strict=True):
        try:
            at = float(value) if value is not None else None
        except ValueError:
            at = None
        if at is None:
            detail = "none received yet (the registry sends one at its first push, pull or delete)"
        else:
            detail = f"last envelope at {iso_time(at)} ({format_duration(max(0, int(clock() - at)))} ago)"
        checks.append(Check(f"registry {name} events", True, detail, required=False))
    return checks


def check_docker_side(config: Config, config_path: Path, environ: Mapping[str, str]) -> list[Check]:
    argv = [sys.executable, "-m", "workers.check", "--config", str(config_path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=dict(environ), check=False)
    except subprocess.TimeoutExpired:
        return [Check("docker engine", False, "no answer within 120 s")]
    checks = []
    for line in done.stdout.splitlines():
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        name = str(result.get("check", "?"))
        required = name in ("docker engine", "registries", f"registry {config.default_registry}")
        checks.append(Check(name, bool(result.get("ok")), str(result.get("detail", "")), required))
    if not checks:
        checks.append(Check("docker engine", False, f"the check did not run (exit status {done.returncode})"))
    return checks


def live_checks(settings: Settings, config: Config, config_path: Path,
                environ: Mapping[str, str] | None = None) -> list[Check]:
    return [check_redis(settings), check_slack(settings),
            *check_docker_side(config, config_path, os.environ if environ is None else environ),
            *check_registry_events(settings, config)]


def passed(checks: list[Check]) -> bool:
    return all(check.ok for check in checks if check.required)
