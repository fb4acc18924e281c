"""Channel subscriptions end to end: signed slash commands → a real `regops serve` → Redis, and the ephemeral answers.

No worker and no registry are needed: a subscription is Redis only, made within the acknowledgement,
and no Slack call is made for it.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn, sign, slash_command_body
from tests.support.stack import ServeProcess
from workers.kernel.audit import AuditEntry
from workers.kernel.keys import AUDIT_STREAM, METRICS_COMMANDS_KEY, SUBSCRIPTIONS_KEY

DB = 4
CONFIG = textwrap.dedent("""\
    registries:
      main:
        server: dockerhub.example.com:5100
        services_hostname: namespace.example.com
        username: ci
        password_env: REGISTRY_PASSWORD
    hosts: [build-1]
    notify_channel: C0OPS
    access:
      roles:
        admin: {actions: ["*"]}
        deployer: {actions: [push, pull, tag, login]}
      grants:
        - {role: admin, users: [U0ADMIN]}
        - {role: deployer, users: [U0DEV1]}
    """)


@dataclass
class Bot:
    serve: ServeProcess
    slack: SlackStandIn
    redis: redis.Redis
    signing_secret: str

    def command(self, text: str, *, user: str = "U0ADMIN", channel: str = "C0OPS") -> dict:
        """POST a signed slash command; its HTTP answer (the acknowledgement), which must be a 200."""
        body = slash_command_body(text, user_id=user, channel_id=channel,
                                  response_url=self.slack.response_url(f"r{time.time_ns()}"))
        request = urllib.request.Request(f"{self.serve.url}/slack/events", data=body.encode(),
                                         headers=sign(self.signing_secret, body), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
                answer: dict = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{text!r} answered HTTP {exc.code}")
        assert answer.get("response_type") == "ephemeral", answer
        return answer

    def stored(self) -> dict[str, dict]:
        return {key: json.loads(value) for key, value in self.redis.hgetall(SUBSCRIPTIONS_KEY).items()}

    def audit(self) -> list[AuditEntry]:
        return [AuditEntry.from_fields(fields) for _id, fields in self.redis.xrange(AUDIT_STREAM)]


@pytest.fixture(scope="module")
def bot(redis_server: RedisServer) -> Iterator[Bot]:
    signing_secret = secrets.token_hex(16)
    bot_token = "xoxb-subscribe-" + secrets.token_hex(12)
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    config = Path(tempfile.mkdtemp(prefix="regops-subscribe-")) / "regops.yaml"
    config.write_text(CONFIG)
    with SlackStandIn(bot_token) as slack:
        serve = ServeProcess({"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                              "SLACK_SIGNING_SECRET": signing_secret}, str(config))
        try:
            serve.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield Bot(serve, slack, connection, signing_secret)
        finally:
            serve.stop()
            connection.flushdb()
            connection.close()


def test_a_channel_subscribes_lists_and_unsubscribes(bot: Bot) -> None:
    posts = len(bot.slack.calls_to("chat.postMessage")) + len(bot.slack.calls_to("chat.postEphemeral"))

    answer = bot.command("subscribe centos7-* --tags latest,v* --events push,delete")
    assert "Subscribed <#C0OPS> as `S1`: pushes and deletes of `centos7-*`, tags `latest`, `v*`" in answer["text"]
    assert "`/registry unsubscribe S1`" in answer["text"]
    stored = bot.stored()
    assert list(stored) == ["S1"]
    assert {key: stored["S1"][key] for key in ("channel", "images", "tags", "events", "registry", "who")} == {
        "channel": "C0OPS", "images": ["centos7-*"], "tags": ["latest", "v*"], "events": ["delete", "push"],
        "registry": None, "who": "U0ADMIN"}
    assert abs(stored["S1"]["at"] - time.time()) < 600

    bot.command("subscribe dockerhub.example.com:5100/com.example.namespace/web/**")
    assert bot.stored()["S2"]["images"] == ["web/**"] and bot.stored()["S2"]["registry"] == "main"

    listing = bot.command("subscriptions", user="U0DEV1")["text"]  # any role may list
    assert "`S1` — pushes and deletes of `centos7-*`" in listing and "by <@U0ADMIN>" in listing
    assert "`S2` — pushes of `web/**`, every tag, registry `main`" in listing
    assert "`notify_channel`: every push" in listing

    removed = bot.command("unsubscribe S1")["text"]
    assert "Removed `S1` from <#C0OPS>" in removed
    removed = bot.command("unsubscribe web/**")["text"]
    assert "Removed `S2`" in removed
    assert bot.stored() == {}
    assert "no subscription" in bot.command("subscriptions")["text"].lower()

    entries = [entry for entry in bot.audit() if entry.command.split(" ")[0] in ("subscribe", "unsubscribe")]
    assert [(entry.decision, entry.outcome.split(":")[0]) for entry in entries] == [
        ("allowed", "subscribed S1"), ("allowed", "subscribed S2"),
        ("allowed", "unsubscribed S1"), ("allowed", "unsubscribed S2")]
    assert all(entry.user == "U0ADMIN" and entry.channel == "C0OPS" for entry in entries)
    assert bot.redis.hget(METRICS_COMMANDS_KEY, "subscribe|allowed") == "2"
    # Redis only: the acknowledgement said it all, and nothing was posted to Slack for it.
    assert len(bot.slack.calls_to("chat.postMessage")) + len(bot.slack.calls_to("chat.postEphemeral")) == posts


def test_what_is_refused_stores_nothing_and_says_why(bot: Bot) -> None:
    denied = bot.command("subscribe centos7-*", user="U0DEV1")["text"]
    assert "you may not run `subscribe`" in denied
    assert "Centos7" in bot.command("subscribe Centos7-*")["text"] and "lower-case" in \
        bot.command("subscribe Centos7-*")["text"]
    assert "regops announces `push`, `delete` only" in bot.command("subscribe app --events pull")["text"]
    assert "Did you mean `main`?" in bot.command("subscribe app --registry mian")["text"]
    assert bot.stored() == {}

    bot.command("subscribe app", channel="C0OTHER")
    other = next(iter(bot.stored()))
    refused = bot.command(f"unsubscribe {other}", channel="C0OPS")["text"]
    assert f"`{other}` is a subscription of <#C0OTHER>, not of <#C0OPS>" in refused
    assert list(bot.stored()) == [other]
    assert bot.audit()[-1].decision == "denied"
    assert "Yes: you may subscribe <#C0OPS>" in bot.command("can-i subscribe")["text"]
    assert "No:" in bot.command("can-i subscribe", user="U0DEV1")["text"]
