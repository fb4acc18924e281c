"""End to end: status, jobs, hosts, cancel (queued and running) and request dedupe, over signed HTTP.

One worker runs for ``build-1``; ``build-idle`` is configured but has no worker, so its
jobs stay queued until cancelled.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import NAMESPACE, Stack, job_id_of, registries_yaml, running_stack
from tests.support.services import DockerEngine, RedisServer, Registry, build_image
from tests.support.slack_standin import block_actions_body, sign, slash_command_body
from tests.support.waiting import wait_until

DB = 11


def config_text(registry: Registry) -> str:
    return registries_yaml(registry) + textwrap.dedent("""\
        default_registry: main
        hosts: [build-1, build-idle]
        default_host: build-1
        timeouts: {push: 5m, pull: 5m, tag: 1m, login: 1m}
        access:
          roles:
            admin: {actions: ["*"]}
            deployer: {actions: [push, pull, tag, login], images: ["centos7-*"], tags: ["*"]}
          grants:
            - {role: admin, users: [U0ADMIN]}
            - {role: deployer, users: [U0DEV1, U0DEV2]}
        """)


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> Iterator[Stack]:
    with running_stack(redis_server, docker_engine, registry, db=DB, config_text=config_text(registry),
                       hosts={"build-1": registry.password}) as running:
        # The worker process is up before rq registers it: wait for that, as "live" is what is tested.
        wait_until(lambda: running.redis.scard("rq:workers:regops.build-1"), 30, "the build-1 worker to register")
        yield running




def message_where(stack: Stack, job_id: str, first_word: str, timeout: float = 60.0) -> dict:
    def find() -> dict | None:
        for (channel, _ts), message in stack.slack.messages.items():
            text = message.get("text") or ""
            if channel == "C0OPS" and f"job {job_id}" in text and text.startswith(first_word):
                return message
        return None
    return stack.slack.wait_for(find, timeout, f"job {job_id}'s message to say {first_word}")


def buttons(message: dict) -> list[str]:
    return [element["action_id"] for block in message.get("blocks") or [] if block["type"] == "actions"
            for element in block["elements"]]


def post_command(stack: Stack, body: str, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(f"{stack.serve.url}/slack/events", data=body.encode(),
                                     headers={**sign(stack.signing_secret, body), **(headers or {})},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_the_ack_gives_the_job_id_its_queue_position_and_says_when_no_worker_is_live(stack: Stack) -> None:
    _, first = stack.command("push centos7-never 1 --host build-idle")
    _, second = stack.command("push centos7-never 2 --host build-idle")
    first_id, second_id = job_id_of(first), job_id_of(second)
    assert f" {first_id} " in first["text"] and f" {second_id} " in second["text"]
    assert "position 1 in the queue for build-idle" in first["text"]
    assert "position 2 in the queue for build-idle" in second["text"]
    assert "No worker is live for host build-idle right now" in second["text"]
    assert stack.redis.llen("rq:queue:regops.build-idle") == 2

    build_image(stack.engine.host, "centos7-ack", "1", layers=1, seed="ack-e2e")
    _, live = stack.command("push centos7-ack 1")
    assert "No worker is live" not in live["text"] and "in the queue for build-1" in live["text"]
    stack.final_message(job_id_of(live))

    for job_id in (first_id, second_id):
        assert stack.command(f"cancel {job_id}")[1]["text"].startswith("Cancelled")


def test_hosts_shows_live_workers_queue_length_and_running_job(stack: Stack) -> None:
    _, queued = stack.command("push centos7-never 3 --host build-idle")
    _, body = stack.command("hosts", user="U0ADMIN")
    lines = body["text"].splitlines()
    build_1 = next(line for line in lines if "`build-1`" in line)
    idle = next(line for line in lines if "`build-idle`" in line)
    assert "1 live worker(s)" in build_1
    assert "no live worker" in idle and "1 job(s) queued" in idle
    # Without a `hosts` grant the command is refused.
    assert stack.command("hosts", user="U0DEV1")[1]["text"].startswith(":no_entry:")
    stack.command(f"cancel {job_id_of(queued)}")


def test_cancel_of_a_queued_job_says_cancelled_with_no_buttons_left(stack: Stack) -> None:
    _, body = stack.command("push centos7-never 4 --host build-idle")
    job_id = job_id_of(body)
    queued = message_where(stack, job_id, "queued")
    assert buttons(queued) == ["regops_cancel"]
    # Someone else without the cancel role is refused, ephemerally, and nothing changes.
    _, refused = stack.command(f"cancel {job_id}", user="U0DEV2")
    assert refused["text"].startswith(":no_entry:")
    assert stack.redis.hget(f"regops:job:{job_id}", "state") == "queued"

    _, answer = stack.command(f"cancel {job_id}")
    assert answer["response_type"] == "ephemeral" and answer["text"].startswith("Cancelled")
    message = message_where(stack, job_id, "cancelled")
    assert buttons(message) == []
    assert job_id not in stack.redis.lrange("rq:queue:regops.build-idle", 0, -1)
    _, again = stack.command(f"cancel {job_id}")
    assert "already ended (cancelled)" in again["text"]


def test_the_cancel_button_cancels_and_refusals_go_to_the_clicker_alone(stack: Stack) -> None:
    _, body = stack.command("push centos7-never 5 --host build-idle")
    job_id = job_id_of(body)
    ts, _message = stack.message_of(job_id)
    click = block_actions_body(user_id="U0DEV2", channel_id="C0OPS", action_id="regops_cancel", value=job_id,
                               message_ts=ts)
    assert stack.post(click) == 200
    notice = stack.slack.wait_for(
        lambda: [c for c in stack.slack.calls_to("chat.postEphemeral") if c.params.get("user") == "U0DEV2"],
        30, "the refusal notice")
    assert "may not cancel" in notice[0].params["text"]
    assert stack.redis.hget(f"regops:job:{job_id}", "state") == "queued"

    click = block_actions_body(user_id="U0DEV1", channel_id="C0OPS", action_id="regops_cancel", value=job_id,
                               message_ts=ts)
    assert stack.post(click) == 200
    message = message_where(stack, job_id, "cancelled")
    assert buttons(message) == [] and "<@U0DEV1>" in message["text"]


def test_status_and_jobs(stack: Stack) -> None:
    build_image(stack.engine.host, "centos7-status", "1", layers=1, seed="status-e2e")
    _, body = stack.command("push centos7-status 1")
    job_id = job_id_of(body)
    stack.final_message(job_id)
    _, status = stack.command(f"status {job_id}")
    text = status["text"]
    assert status["response_type"] == "ephemeral"
    for fact in (job_id, "succeeded", f"{NAMESPACE}/centos7-status:1", "build-1", "U0DEV1", "queued ",
                 "started ", "finished ", "took ", "digest `sha256:"):
        assert fact in text, text
    # Another deployer without a status grant may not see it; the admin may.
    assert stack.command(f"status {job_id}", user="U0DEV2")[1]["text"].startswith(":no_entry:")
    assert job_id in stack.command(f"status {job_id}", user="U0ADMIN")[1]["text"]

    _, jobs = stack.command("jobs --mine")
    assert jobs["response_type"] == "ephemeral" and job_id in jobs["text"]
    assert job_id not in stack.command("jobs", user="U0DEV2")[1]["text"]
    listed = stack.command("jobs --limit 50", user="U0ADMIN")[1]["text"]
    ids = re.findall(r"• `([0-9a-f]{12})`", listed)
    assert job_id in ids and ids.index(job_id) == 0  # newest first


def test_the_same_signed_request_twice_makes_one_job(stack: Stack) -> None:
    before = len(stack.job_keys())
    body = slash_command_body("push centos7-never 6 --host build-idle", user_id="U0DEV1", channel_id="C0OPS",
                              response_url=stack.slack.response_url("dedupe"), trigger_id="trig.dedupe.1")
    first = post_command(stack, body)
    job_id = job_id_of(first)
    retry = post_command(stack, body, {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert f"already queued as job {job_id}" in retry["text"]
    assert len(stack.job_keys()) == before + 1
    assert stack.redis.lrange("rq:queue:regops.build-idle", 0, -1).count(job_id) == 1
    stack.command(f"cancel {job_id}")


def test_cancel_of_a_running_push_stops_it_and_nothing_lands_in_the_registry(stack: Stack) -> None:
    build_image(stack.engine.host, "centos7-big", "1", layers=4, layer_size=16 * 1024 * 1024, seed="cancel-e2e")
    _, body = stack.command("push centos7-big 1")
    job_id = job_id_of(body)
    wait_until(lambda: stack.redis.hget(f"regops:job:{job_id}", "state") != "queued", 60, "the job to start")
    _, answer = stack.command(f"cancel {job_id}")
    assert answer["text"].startswith("Cancelled"), answer["text"]
    assert "stopped on its Docker host" in answer["text"]

    message = message_where(stack, job_id, "cancelled")
    assert buttons(message) == []
    assert stack.registry.manifest_digest(f"{NAMESPACE}/centos7-big", "1") is None
    # The killed work horse writes nothing after the cancellation: it stays cancelled.
    time.sleep(3)
    assert stack.redis.hget(f"regops:job:{job_id}", "state") == "cancelled"
    events = [f["type"] for _id, f in stack.redis.xrange("regops:events") if f.get("job_id") == job_id]
    assert events[-1] == "cancelled" and "failed" not in events and "succeeded" not in events
    assert stack.redis.hget(f"rq:job:{job_id}", "status") == "stopped"
    assert message_where(stack, job_id, "cancelled")["text"].startswith("cancelled")

    # The worker takes the next job at once.
    build_image(stack.engine.host, "centos7-after", "1", layers=1, seed="after-cancel")
    _, body = stack.command("push centos7-after 1")
    assert stack.final_message(job_id_of(body))["text"].startswith("succeeded")
