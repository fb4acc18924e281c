"""Channel subscriptions end to end: signed slash commands → a real `regops serve` → Redis, and the ephemeral answers.

No worker and no registry are needed: a subscription is Redis only, made within the acknowledgement,
and no Slack call is made for it.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ServeBot, serve_bot
from tests.support.services import RedisServer
from workers.kernel.keys import METRICS_COMMANDS_KEY, SUBSCRIPTIONS_KEY

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


class Bot(ServeBot):
    """serve with this module's config; the subscriptions it stored."""

    def command(self, text: str, *, user: str = "U0ADMIN", channel: str = "C0OPS") -> dict:
        """A signed slash command's acknowledgement."""
        return self.answer(text, user=user, channel=channel)

    def stored(self) -> dict[str, dict]:
        return {key: json.loads(value) for key, value in self.redis.hgetall(SUBSCRIPTIONS_KEY).items()}


@pytest.fixture(scope="module")
def bot(redis_server: RedisServer) -> Iterator[Bot]:
    with serve_bot(redis_server, db=DB, config_text=CONFIG, kind=Bot) as made:
        yield made


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
