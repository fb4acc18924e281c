"""Guard rails end to end: signed slash commands → a real `regops serve` → Redis, refused at the acknowledgement.

No worker and no registry are needed: a refusal is decided within the acknowledgement, and an allowed
command is only queued (its job waits: what matters here is that it is in the queue, or not).  The
config's freeze windows are built from the current UTC time when the module starts: one open now (from
this minute, for an hour), one that is not (six hours on).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.e2e.conftest import ServeBot, serve_bot
from tests.support.services import RedisServer
from workers.kernel.actions import REGISTRY_QUEUE
from workers.kernel.keys import FREEZES_KEY, rq_queue_key

DB = 2
NOW = datetime.now(UTC)
CONFIG = textwrap.dedent(f"""\
    registries:
      main:
        server: dockerhub.example.com:5100
        services_hostname: namespace.example.com
        username: ci
        password_env: REGISTRY_PASSWORD
    hosts: [build-1]
    notify_channel: C0NOTIFY
    access:
      roles:
        admin: {{actions: ["*"]}}
        deployer: {{actions: [push, pull, promote]}}
      grants:
        - {{role: admin, users: [U0ADMIN]}}
        - {{role: deployer, users: [U0DEV1]}}
    guards:
      freeze_windows:
        - {{name: change-board, cron: "{NOW.minute} {NOW.hour} * * *", duration: 1h, images: ["board-*"],
           reason: "change board in session"}}
        - {{name: nightly, cron: "0 {(NOW.hour + 6) % 24} * * *", duration: 1h, images: ["nightly-*"],
           reason: "nightly backups"}}
      promotion_paths:
        - {{images: ["app-*"], stages: [dev, staging, prod]}}
    """)


class Bot(ServeBot):
    """serve with this module's config; what is queued for the host and the registry queue."""

    def command(self, text: str, *, user: str = "U0DEV1", channel: str = "C0OPS") -> str:
        """The text of a signed slash command's acknowledgement."""
        return str(self.answer(text, user=user, channel=channel)["text"])

    def queued(self) -> int:
        return sum(int(self.redis.llen(rq_queue_key(name))) for name in ("build-1", REGISTRY_QUEUE))


@pytest.fixture(scope="module")
def bot(redis_server: RedisServer) -> Iterator[Bot]:
    with serve_bot(redis_server, db=DB, config_text=CONFIG, kind=Bot) as made:
        yield made


def test_a_freeze_from_slack_refuses_a_push_at_the_ack_and_unfreeze_lets_it_through(bot: Bot) -> None:
    before = bot.queued()
    started = bot.command('freeze centos7-* --for 2h --reason "release week"', user="U0ADMIN")
    assert "Freeze `F1` started" in started
    notice = bot.slack.wait_for(lambda: next((c for c in bot.slack.calls_to("chat.postMessage")
                                              if c.params.get("channel") == "C0NOTIFY"
                                              and "Freeze F1 started" in str(c.params.get("text"))), None),
                                what="the freeze's notice in the notify channel")
    assert "release week" in str(notice.params["text"]) and "<@U0ADMIN>" in str(notice.params["text"])

    refused = bot.command("push centos7-es latest")
    assert "frozen by freeze F1 (<@U0ADMIN>): release week; until `" in refused and "Nothing was queued" in refused
    assert bot.queued() == before
    entry = bot.audit()[-1]
    assert (entry.decision, entry.rule, entry.user) == ("denied", "freeze F1", "U0DEV1")
    assert "F1" in bot.command("freezes")

    assert "Freeze `F1` ended" in bot.command("unfreeze F1", user="U0ADMIN")
    assert json.loads(bot.redis.hget(FREEZES_KEY, "F1"))["ended_by"] == "U0ADMIN"
    assert "Queued push of" in bot.command("push centos7-es latest")
    assert bot.queued() == before + 1


def test_a_config_window_open_now_refuses_and_one_that_is_not_does_not(bot: Bot) -> None:
    before = bot.queued()
    refused = bot.command("push board-api 1.0")
    assert "frozen by window change-board: change board in session; until `" in refused
    assert bot.queued() == before
    assert bot.audit()[-1].rule == "window change-board"
    assert "Queued push of" in bot.command("push nightly-api 1.0")
    assert bot.queued() == before + 1
    listing = bot.command("freezes")
    assert "window `change-board`" in listing and "*open now*" in listing and "next from" in listing


def test_a_promote_that_skips_a_stage_is_refused_and_the_allowed_promote_is_queued(bot: Bot) -> None:
    before = bot.queued()
    refused = bot.command("promote app-api dev prod")
    assert "`prod` is reached only from `staging`: dev → staging → prod" in refused
    refused = bot.command("push app-api prod")
    assert "`promote app-api staging prod`" in refused
    assert bot.queued() == before
    assert [entry.rule for entry in bot.audit()[-2:]] == ["guards.promotion_paths[0]"] * 2
    assert "Queued promote of" in bot.command("promote app-api staging prod")
    assert bot.queued() == before + 1
    answer = bot.command("can-i push app-api prod")
    assert "guard rails refuse it" in answer and "`guards.promotion_paths[0]`" in answer
