"""What `regops serve` writes to its log from start to stop: gunicorn's lines in the process's format, no Bolt noise."""

from __future__ import annotations

import json
import secrets
import signal
import tempfile
import textwrap
import urllib.request
from pathlib import Path

import pytest

from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn
from tests.support.stack import ServeProcess
from tests.support.waiting import wait_until

CONFIG = textwrap.dedent("""\
    registries:
      main:
        server: dockerhub.example.com:5100
        services_hostname: namespace.example.com
        username: user001@namespace.example.com
        password_env: REGISTRY_PASSWORD
    default_registry: main
    hosts: [build-1]
    default_host: build-1
    access:
      roles:
        admin: {actions: ["*"]}
      grants:
        - {role: admin, users: [U0ADMIN]}
    """)

BOLT_TOKEN_WARNING = "will be unused"
"""Bolt's "As you gave `client` as well, `token` will be unused." (and its `authorize` twin)."""


def run_serve(redis_server: RedisServer, extra: list[str], db: int) -> str:
    """Start serve (two gunicorn workers), make one request, stop it as systemd does; return its whole log."""
    bot_token = "xoxb-logs-" + secrets.token_hex(12)
    config = Path(tempfile.mkdtemp(prefix="regops-serve-logs-")) / "regops.yaml"
    config.write_text(CONFIG)
    with SlackStandIn(bot_token) as slack:
        serve = ServeProcess({"REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/{db}",
                              "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                              "SLACK_SIGNING_SECRET": secrets.token_hex(16)},
                             str(config), workers=2, extra=extra)
        try:
            serve.start()
            with urllib.request.urlopen(f"{serve.url}/healthz", timeout=5) as response:
                assert response.status == 200
            # Both workers have built their Bolt app (where the warning was) once both say so.
            wait_until(lambda: serve.log_text().count("relay: Slack identity") >= 2, 30,
                       "both workers to start their relay")
            serve.signal_all(signal.SIGTERM)
            wait_until(lambda: not serve.running, 30, "serve to stop")
            log = serve.log_text()  # before stop(), which removes the log
        finally:
            serve.stop()
    assert bot_token not in log
    return log


def test_with_log_format_json_every_line_gunicorns_included_is_one_json_object(
        redis_server: RedisServer) -> None:
    log = run_serve(redis_server, ["--log-format", "json", "--access-log"], db=11)
    entries = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n--- log ---\n{log}")
        assert isinstance(entry, dict) and {"time", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    gunicorn = [e["message"] for e in entries if e["logger"] == "gunicorn.error"]
    assert any(m.startswith("Listening at: http://127.0.0.1:") for m in gunicorn), gunicorn
    assert sum(m.startswith("Booting worker with pid") for m in gunicorn) == 2, gunicorn
    assert any(m.startswith("Shutting down") for m in gunicorn), gunicorn
    access = [e["message"] for e in entries if e["logger"] == "gunicorn.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in m for m in access), access
    assert not any(BOLT_TOKEN_WARNING in e["message"] for e in entries)


def test_serve_logs_no_bolt_warning_about_an_unused_token(redis_server: RedisServer) -> None:
    log = run_serve(redis_server, [], db=12)
    assert "Booting worker with pid" in log  # gunicorn's lines are there, in the text format
    assert BOLT_TOKEN_WARNING not in log, log
