"""The flood of issue 9 against a real `regops serve`: one person's pushes as fast as they go, under the
default limits. No worker runs, so every queued job stays open, as in the attack (2,000 pushes in 55 s).

Without the limits all 60 pushes queue (60 jobs, 120 Slack posts with the audit channel); with them the
first 20 queue, the rest are refused ephemerally, and Slack hears about 20 jobs and 31 audit entries.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from bot.core.audit import AuditLog
from tests.support.services import RedisServer
from tests.support.slack_standin import SlackStandIn, sign, slash_command_body
from tests.support.stack import ServeProcess

PUSHES = 60
CONCURRENCY = 6
AUDIT_CHANNEL = "C0AUDIT"
CONFIG = textwrap.dedent(f"""\
    registries:
      main:
        server: 127.0.0.1:5999
        services_hostname: namespace.example.com
        username: user001@namespace.example.com
        password_env: REGISTRY_PASSWORD
    hosts: [build-1]
    audit_channel: {AUDIT_CHANNEL}
    access:
      roles:
        admin: {{actions: ["*"]}}
        deployer: {{actions: [push, pull, tag, login, jobs, cancel], images: ["centos7-*"]}}
      grants:
        - {{role: admin, users: [U0ADMIN]}}
        - {{role: deployer, users: [U0FLOOD, U0OTHER]}}
    # no limits section: the defaults (30 commands a minute, 20 open jobs a person, 200 a host, admin exempt)
    """)


@dataclass
class Flood:
    slack: SlackStandIn
    serve: ServeProcess
    redis: redis.Redis
    signing_secret: str

    def command(self, text: str, user: str = "U0FLOOD") -> tuple[int, dict]:
        body = slash_command_body(text, user_id=user, channel_id="C0OPS",
                                  response_url=self.slack.response_url(f"r{time.time_ns()}"),
                                  trigger_id=f"trig.{secrets.token_hex(8)}")
        request = urllib.request.Request(f"{self.serve.url}/slack/events", data=body.encode(),
                                         headers=sign(self.signing_secret, body), method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}

    def posts(self, channel: str) -> int:
        return sum(1 for call in self.slack.calls_to("chat.postMessage") if call.params.get("channel") == channel)


@pytest.fixture
def flood(redis_server: RedisServer) -> Iterator[Flood]:
    redis_url = f"redis://127.0.0.1:{redis_server.port}/7"  # a database no other e2e test uses
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushdb()
    config = Path(tempfile.mkdtemp(prefix="regops-e2e-limits-")) / "regops.yaml"
    config.write_text(CONFIG)
    signing_secret, bot_token = secrets.token_hex(16), "xoxb-test-" + secrets.token_hex(12)
    with SlackStandIn(bot_token) as slack:
        serve = ServeProcess({"REDIS_URL": redis_url, "SLACK_API_URL": slack.api_url, "SLACK_BOT_TOKEN": bot_token,
                              "SLACK_SIGNING_SECRET": signing_secret}, str(config), workers=2, threads=4)
        try:
            serve.start()
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)
        try:
            yield Flood(slack, serve, connection, signing_secret)
        finally:
            serve.stop()
            connection.flushdb()
            connection.close()


def test_one_persons_flood_queues_up_to_the_cap_and_is_refused_ephemerally_after(flood: Flood) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(pool.map(lambda n: flood.command(f"push centos7-app build-{n}"), range(PUSHES)))
    elapsed = time.monotonic() - started

    assert all(status == 200 for status, _ in answers)
    assert all(body.get("response_type") == "ephemeral" for _, body in answers)
    texts = [body.get("text", "") for _, body in answers]
    queued = [text for text in texts if text.startswith(":inbox_tray: Queued")]
    by_cap = [text for text in texts if "You have 20 jobs queued, running or awaiting approval" in text]
    by_rate = [text for text in texts if "You sent 30 commands in the last minute" in text]
    assert (len(queued), len(by_cap), len(by_rate)) == (20, 10, 30), texts
    assert all("`/registry cancel JOB`" in text for text in by_cap)
    assert all(re.search(r"Try again in \d+ s\.", text) for text in by_rate)

    # Nothing else was queued: 20 job records, 20 on the host's queue.
    assert sum(1 for _ in flood.redis.scan_iter("regops:job:*")) == 20
    assert flood.redis.llen("rq:queue:regops.build-1") == 20

    # Slack hears of the 20 jobs (one message each, in the channel) and of 31 audit entries: 20 queued,
    # 10 refused by the open-jobs cap, 1 for the run of 30 refusals by the rate limit.
    flood.slack.wait_for(lambda: flood.posts("C0OPS") >= 20 and flood.posts(AUDIT_CHANNEL) >= 31, 60,
                         "the job messages and audit posts")
    time.sleep(2)  # anything more the relays would post
    job_posts, audit_posts = flood.posts("C0OPS"), flood.posts(AUDIT_CHANNEL)
    assert (job_posts, audit_posts) == (20, 31)
    decisions = [entry.decision for entry in AuditLog(flood.redis).entries()]
    assert decisions.count("queued") == 20 and decisions.count("limited") == 11

    with urllib.request.urlopen(f"{flood.serve.url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'regops_commands_limited_total{limit="queued_per_user"} 10.0' in metrics
    assert 'regops_commands_limited_total{limit="commands_per_minute"} 30.0' in metrics
    assert 'regops_commands_total{action="push",decision="limited"} 40.0' in metrics

    # Another person is not held up by the flood, and an admin is exempt.
    assert flood.command("push centos7-app other", user="U0OTHER")[1]["text"].startswith(":inbox_tray: Queued")
    for n in range(35):
        assert flood.command(f"push anything admin-{n}", user="U0ADMIN")[1]["text"].startswith(
            ":inbox_tray: Queued")
    print(f"\nflood: {PUSHES} signed pushes from one user ({CONCURRENCY} at a time) in {elapsed:.2f} s: "
          f"{len(queued)} queued, {len(by_cap)} refused by queued_per_user, {len(by_rate)} refused by "
          f"commands_per_minute; Slack posts: {job_posts} job messages + {audit_posts} audit entries")

