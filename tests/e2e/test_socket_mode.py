"""End to end over Socket Mode: `regops serve` with SLACK_APP_TOKEN opens its connections through
SLACK_API_URL, acknowledges envelopes with the same replies HTTP mode gives, and relays jobs to Slack."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import Stack, job_id_of, write_config
from tests.support.services import DockerEngine, RedisServer, Registry, build_image
from tests.support.slack_standin import SlackStandIn, block_actions_body, slash_command_body
from tests.support.socket_standin import SocketModeStandIn
from tests.support.stack import ServeProcess, WorkerProcess

DB = 13  # apart from the databases the other end-to-end tests use
ACK_DEADLINE = 3.0  # Slack's: an envelope not acknowledged within 3 s is retried or dropped


class SocketStack(Stack):
    socket: SocketModeStandIn
    app_token: str

    def envelope(self, text: str, *, user: str = "U0DEV1", channel: str = "C0OPS") -> str:
        """Deliver a `/registry TEXT` slash command envelope; its envelope id."""
        body = slash_command_body(text, user_id=user, channel_id=channel,
                                  response_url=self.slack.response_url(f"r{time.time_ns()}"))
        return self.socket.send("slash_commands", dict(urllib.parse.parse_qsl(body)))

    def command_ack(self, text: str, **kwargs: str) -> dict:
        """The ack payload of a slash command envelope, asserting it came within Slack's deadline."""
        envelope_id = self.envelope(text, **kwargs)
        ack = self.socket.wait_ack(envelope_id, timeout=10)
        waited = ack.at - self.socket.deliveries[envelope_id].at
        assert waited < ACK_DEADLINE, f"ack of {text!r} took {waited:.2f} s"
        return ack.payload or {}

    def connections_opened(self) -> int:
        return sum(1 for c in self.slack.calls_to("apps.connections.open"))




def _healthz(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_healthz(url: str, status: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (last := _healthz(url)) != status:
        assert time.monotonic() < deadline, f"/healthz stayed {last}, wanted {status}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> Iterator[SocketStack]:
    """serve with two gunicorn workers, each with its own Socket Mode connection, and one worker."""
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-test-" + secrets.token_hex(12)
    app_token = "xapp-1-A0REGOPS-" + secrets.token_hex(12)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    config = write_config(Path(tempfile.mkdtemp(prefix="regops-socket-")), registry)
    with SocketModeStandIn() as socket, SlackStandIn(bot_token, app_token=app_token, socket=socket) as slack:
        common = {"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                  "DOCKER_HOST": docker_engine.host}
        # The signing secret is optional in Socket Mode; set here so HTTP replies can be compared.
        serve = ServeProcess({**common, "SLACK_APP_TOKEN": app_token, "SLACK_SIGNING_SECRET": signing_secret},
                             str(config), workers=2)
        worker = WorkerProcess({**common, "REGISTRY_PASSWORD": registry.password}, str(config), "build-1")
        started: list[ServeProcess | WorkerProcess] = []
        try:
            for process in (serve, worker):
                process.start()
                started.append(process)
            socket.wait_connections(2, timeout=30)
            running = SocketStack(slack, serve, [worker], connection, registry, docker_engine, signing_secret,
                                  bot_token, "unused")
            running.socket = socket
            running.app_token = app_token
            yield running
        finally:
            for process in reversed(started):
                process.stop()
            connection.flushdb()
            connection.close()


def test_each_worker_opens_its_connection_through_slack_api_url_with_the_app_token(stack: SocketStack) -> None:
    opens = stack.slack.calls_to("apps.connections.open")
    assert len(opens) >= 2
    assert all(call.authorization == f"Bearer {stack.app_token}" for call in opens)
    assert len(stack.socket.open) == 2
    _wait_healthz(stack.serve.url, 200)


def test_push_envelope_is_acked_with_the_queued_reply_and_the_job_is_relayed(stack: SocketStack) -> None:
    build_image(stack.engine.host, "centos7-socket", "1.0", layers=1, seed="socket-push")
    body = stack.command_ack("push centos7-socket 1.0")
    assert body["response_type"] == "ephemeral"
    assert "Queued" in body["text"]
    assert f"{stack.registry.server}/com.example.namespace/centos7-socket:1.0" in body["text"]
    job_id = job_id_of(body)

    message = stack.final_message(job_id)
    assert message["text"].startswith("succeeded")
    posts = [c for c in stack.slack.calls_to("chat.postMessage")
             if c.params["channel"] == "C0OPS" and f"job {job_id}" in c.params["text"]]
    assert len(posts) == 1


def test_help_ack_carries_the_same_reply_as_the_http_response(stack: SocketStack) -> None:
    body = stack.command_ack("help")
    assert "push" in body["text"] and "pull" in body["text"]
    status, http_body = stack.command("help")
    assert status == 200
    assert body == http_body


def test_a_wrong_command_gets_its_usage_error_in_the_ack_and_queues_nothing(stack: SocketStack) -> None:
    jobs_before = stack.job_keys()
    queues_before = stack.queue_lengths()
    body = stack.command_ack("psuh centos7-socket 1.0")
    assert "unknown command" in body["text"] and "push" in body["text"]
    assert body["response_type"] == "ephemeral"
    assert stack.job_keys() == jobs_before
    assert stack.queue_lengths() == queues_before


def test_button_clicks_arrive_as_interactive_envelopes(stack: SocketStack) -> None:
    build_image(stack.engine.host, "centos7-socket", "2.0", layers=1, seed="socket-click")
    job_id = job_id_of(stack.command_ack("push centos7-socket 2.0"))
    ts, _message = stack.message_of(job_id)
    form = block_actions_body(user_id="U0DEV1", channel_id="C0OPS", action_id="regops_approve", value=job_id,
                              message_ts=ts)
    payload = json.loads(urllib.parse.parse_qs(form)["payload"][0])
    ack = stack.socket.wait_ack(stack.socket.send("interactive", payload))
    # A click on a job that needs no approval is refused, and told to the clicker alone.
    assert not ack.payload
    stack.slack.wait_for(lambda: [c for c in stack.slack.calls_to("chat.postEphemeral")
                                  if c.params.get("user") == "U0DEV1"], 30, "the refusal notice")
    stack.final_message(job_id)


def test_after_a_refresh_request_the_bot_reconnects_and_keeps_handling_envelopes(stack: SocketStack) -> None:
    opened_before = stack.connections_opened()
    asked = stack.socket.disconnect("refresh_requested")
    stack.socket.wait_for(lambda: asked not in stack.socket.open and len(stack.socket.open) == 2, 30,
                          "the refreshed connection to replace the old one")
    assert stack.connections_opened() == opened_before + 1
    for connection in sorted(stack.socket.open):
        envelope_id = stack.socket.send("slash_commands", dict(urllib.parse.parse_qsl(
            slash_command_body("whoami", user_id="U0DEV1"))), connection=connection)
        assert "deployer" in (stack.socket.wait_ack(envelope_id).payload or {}).get("text", "")
    _wait_healthz(stack.serve.url, 200)


@pytest.mark.parametrize("abrupt", [False, True], ids=["close-frame", "tcp-closed"])
def test_a_dropped_connection_is_reopened(stack: SocketStack, abrupt: bool) -> None:
    opened_before = stack.connections_opened()
    dropped = stack.socket.drop(abrupt=abrupt)
    stack.socket.wait_for(lambda: dropped not in stack.socket.open and len(stack.socket.open) == 2, 30,
                          "a new connection after the drop")
    assert stack.connections_opened() > opened_before
    assert "Queued" not in stack.command_ack("help")["text"]


def test_envelopes_spread_over_both_connections_are_each_handled_once(stack: SocketStack) -> None:
    build_image(stack.engine.host, "centos7-spread", "1.0", layers=1, seed="socket-spread-1")
    build_image(stack.engine.host, "centos7-spread", "2.0", layers=1, seed="socket-spread-2")
    connections = stack.socket.wait_connections(2)
    envelopes = {}
    for connection, tag in zip(connections, ("1.0", "2.0"), strict=True):
        body = slash_command_body(f"push centos7-spread {tag}", user_id="U0DEV1",
                                  response_url=stack.slack.response_url(f"spread{tag}"))
        envelopes[stack.socket.send("slash_commands", dict(urllib.parse.parse_qsl(body)),
                                    connection=connection)] = connection
    job_ids = []
    for envelope_id, connection in envelopes.items():
        ack = stack.socket.wait_ack(envelope_id)
        assert ack.connection == connection
        job_ids.append(job_id_of(ack.payload or {}))
    assert len(set(job_ids)) == 2
    for job_id in job_ids:
        assert stack.final_message(job_id)["text"].startswith("succeeded")
    time.sleep(2)  # a duplicate post, if any, would come from the other process's relay by now
    for job_id in job_ids:
        posts = [c for c in stack.slack.calls_to("chat.postMessage")
                 if c.params["channel"] == "C0OPS" and f"job {job_id}" in c.params["text"]]
        assert len(posts) == 1, f"job {job_id} posted {len(posts)} times"
    assert not stack.socket.unknown, "the bot sent something that was not a single acknowledgement"


def test_the_app_token_never_reaches_a_log_line_or_a_message(stack: SocketStack) -> None:
    assert stack.app_token not in stack.logs()
    sent = [c.raw for c in stack.slack.calls if c.method != "apps.connections.open"]
    assert not any(stack.app_token in raw for raw in sent)


def test_a_wrong_app_token_keeps_serve_unhealthy_and_retrying(redis_server: RedisServer,
                                                                 registry: Registry) -> None:
    bot_token = "xoxb-test-" + secrets.token_hex(12)
    wrong_token = "xapp-1-WRONG-" + secrets.token_hex(12)
    config = write_config(Path(tempfile.mkdtemp(prefix="regops-socket-bad-")), registry)
    with SocketModeStandIn() as socket, \
            SlackStandIn(bot_token, app_token="xapp-1-RIGHT-" + secrets.token_hex(8), socket=socket) as slack:
        # No signing secret at all: Socket Mode does not need one.
        serve = ServeProcess({"REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/{DB + 1}",
                              "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                              "SLACK_APP_TOKEN": wrong_token}, str(config), workers=1)
        serve.start()
        try:
            slack.wait_for(lambda: len(slack.calls_to("apps.connections.open")) >= 3, 30,
                           "apps.connections.open to be retried")
            assert _healthz(serve.url) == 503
            assert not socket.opened
            # Without a signing secret, POST /slack/events is refused outright.
            request = urllib.request.Request(f"{serve.url}/slack/events", method="POST",
                                             data=slash_command_body("help", user_id="U0DEV1").encode(),
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 401
            log = serve.log_text()  # before stop(), which removes the log
        finally:
            serve.stop()
        assert "apps.connections.open failed (invalid_auth)" in log
        assert wrong_token not in log
