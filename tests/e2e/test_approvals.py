"""Access control end to end: user groups from the Slack stand-in, channels, approvals by signed clicks."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator

import pytest
from rq import Queue

from tests.e2e.conftest import NAMESPACE, Stack, job_id_of, registries_yaml, running_stack
from tests.support.services import DockerEngine, RedisServer, Registry, build_image
from workers.kernel.keys import AUDIT_STREAM, queue_name


def policy_config(registry: Registry) -> str:
    return registries_yaml(registry) + textwrap.dedent("""\
        hosts: [build-1]
        audit_channel: C0AUDIT
        timeouts: {push: 5m, pull: 5m, tag: 1m, login: 1m}
        access:
          roles:
            admin:    {actions: ["*"]}
            lead:     {actions: [push, pull]}
            deployer: {actions: [push, pull, tag, login, status, jobs, cancel], images: ["centos7-*", "web/*"],
                       tags: ["*"], registries: ["*"], hosts: ["*"]}
            reader:   {actions: [pull, status, jobs]}
          grants:
            - {role: admin, users: [U0ADMIN, U0ADMIN2]}
            - {role: lead, users: [U0LEAD]}
            - {role: deployer, usergroups: [S0DEVOPS], channels: [C0OPS, C0DEPLOYS]}
            - {role: deployer, usergroups: [S0GONE]}
            - {role: reader, users: ["*"]}
          approvals:
            - {images: ["*"], tags: ["exp-*"], approvers: [admin], required: 1, expires_in: 4s}
            - {images: ["*"], tags: ["two-*"], approvers: [admin, U0LEAD], required: 2, expires_in: 30m}
            - {images: ["*"], tags: ["latest", "prod-*"], approvers: [admin], required: 1, expires_in: 30m}
        """)


@pytest.fixture(scope="module")
def policy_stack(redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> Iterator[Stack]:
    # S0GONE is unknown to the stand-in: usergroups.users.list answers no_such_subteam.
    with running_stack(redis_server, docker_engine, registry, db=6, config_text=policy_config(registry),
                       usergroups={"S0DEVOPS": ["U0DEV1"]}) as stack:
        yield stack




def _in_rq(stack: Stack, job_id: str) -> bool:
    """Whether the job reached rq (its queue or its job hash): an approval request must not, until approved.

    Asked of this job alone: counting every job would race with earlier tests' jobs leaving the queue."""
    import redis as redis_lib

    kwargs = stack.redis.connection_pool.connection_kwargs
    raw = redis_lib.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs["db"])
    try:
        return job_id in Queue(queue_name("build-1"), connection=raw).job_ids or bool(raw.exists(f"rq:job:{job_id}"))
    finally:
        raw.close()


def _has_buttons(message: dict) -> bool:
    return any(block.get("type") == "actions" for block in message.get("blocks") or [])


def _ephemerals_to(stack: Stack, user: str) -> list[str]:
    return [c.params["text"] for c in stack.slack.calls_to("chat.postEphemeral") if c.params["user"] == user]


@pytest.mark.parametrize(
    ("user", "channel", "text", "expected"),
    [
        ("U0DEV1", "C0OPS", "push centos7-app 1.0", "Queued"),
        ("U0DEV1", "C0RANDOM", "push centos7-app 1.0", "not valid in this channel"),
        ("U0OUTSIDER", "C0OPS", "push centos7-app 1.0", "S0GONE"),
        ("U0OUTSIDER", "C0OPS", "pull centos7-app 1.0", "Queued"),
        ("U0DEV1", "C0OPS", "push nginx 1.0", "no grant"),
    ],
)
def test_grants_by_user_group_channel_and_everyone(policy_stack: Stack, user: str, channel: str, text: str,
                                                   expected: str) -> None:
    status, body = policy_stack.command(text, user=user, channel=channel)
    assert status == 200
    assert expected in body["text"], body["text"]


def test_an_unresolvable_group_fails_closed_and_is_named_in_the_log(policy_stack: Stack) -> None:
    _, body = policy_stack.command("push centos7-app 2.0", user="U0OUTSIDER")
    assert "could not be resolved" in body["text"] and "S0GONE" in body["text"]
    assert "S0GONE" in policy_stack.serve.log_text()
    lookups = {c.params["usergroup"] for c in policy_stack.slack.calls_to("usergroups.users.list")}
    assert lookups == {"S0DEVOPS", "S0GONE"}  # loaded at start-up, not per command


def test_self_service_whoami_can_i_and_help_show_only_what_you_may_do(policy_stack: Stack) -> None:
    _, whoami = policy_stack.command("whoami", user="U0DEV1")
    assert "deployer" in whoami["text"] and "S0DEVOPS" in whoami["text"]
    _, yes = policy_stack.command("can-i push centos7-app latest", user="U0DEV1")
    assert yes["text"].startswith("Yes") and "approval" in yes["text"]
    _, no = policy_stack.command("can-i push nginx 1", user="U0DEV1")
    assert no["text"].startswith("No")
    _, reader_help = policy_stack.command("help", user="U0OUTSIDER")
    assert "pull IMAGE TAG" in reader_help["text"] and "push IMAGE TAG" not in reader_help["text"]


def test_approval_flow_self_approval_and_strangers_refused_then_approved_and_run(policy_stack: Stack) -> None:
    stack = policy_stack
    build_image(stack.engine.host, "centos7-app", "latest", layers=1, seed="approval-e2e")
    status, body = stack.command("push centos7-app latest", user="U0DEV1")
    assert status == 200 and "needs approval" in body["text"]
    job_id = job_id_of(body)
    ts, message = stack.message_of(job_id)
    reference = f"{stack.registry.server}/{NAMESPACE}/centos7-app:latest"
    assert reference in message["text"] and "<@U0DEV1>" in message["text"] and _has_buttons(message)
    assert not _in_rq(stack, job_id)

    # The requester cannot approve; nor can someone who is not an approver.
    assert stack.click(job_id, "U0DEV1") == 200
    assert stack.click(job_id, "U0OUTSIDER") == 200
    stack.slack.wait_for(lambda: _ephemerals_to(stack, "U0DEV1") and _ephemerals_to(stack, "U0OUTSIDER"), 15,
                         "the refusals")
    assert "requested" in _ephemerals_to(stack, "U0DEV1")[-1]
    assert not _in_rq(stack, job_id)
    assert _has_buttons(stack.slack.messages[("C0OPS", ts)])

    # A forged click changes nothing.
    assert stack.post("payload=%7B%7D", secret="forged") == 401

    assert stack.click(job_id, "U0ADMIN") == 200
    final = stack.final_message(job_id)
    assert final["text"].startswith("succeeded") and "U0ADMIN" in final["text"]
    assert ("C0OPS", ts) in stack.slack.messages and stack.slack.messages[("C0OPS", ts)] is final
    assert not _has_buttons(final)

    # A late click on the old copy changes nothing.
    calls = len(stack.slack.calls_to("chat.update"))
    assert stack.click(job_id, "U0ADMIN2", message_ts=ts) == 200
    stack.slack.wait_for(lambda: _ephemerals_to(stack, "U0ADMIN2"), 15, "the late-click notice")
    assert "already" in _ephemerals_to(stack, "U0ADMIN2")[-1]
    assert len(stack.slack.calls_to("chat.update")) == calls


def test_a_rejection_closes_the_request(policy_stack: Stack) -> None:
    stack = policy_stack
    _, body = stack.command("push centos7-app prod-1", user="U0DEV1")
    job_id = job_id_of(body)
    ts, _ = stack.message_of(job_id)
    stack.click(job_id, "U0ADMIN", approve=False)
    message = stack.slack.wait_for(
        lambda: (stack.slack.messages[("C0OPS", ts)]["text"] or "").startswith("rejected")
        and stack.slack.messages[("C0OPS", ts)], 15, "the rejection")
    assert "U0ADMIN" in message["text"] and not _has_buttons(message)
    assert not _in_rq(stack, job_id)


def test_an_unanswered_request_expires(policy_stack: Stack) -> None:
    stack = policy_stack
    _, body = stack.command("push centos7-app exp-1", user="U0DEV1")
    job_id = job_id_of(body)
    ts, _ = stack.message_of(job_id)
    message = stack.slack.wait_for(
        lambda: (stack.slack.messages[("C0OPS", ts)]["text"] or "").startswith("expired")
        and stack.slack.messages[("C0OPS", ts)], 20, "the expiry")
    assert not _has_buttons(message)
    stack.click(job_id, "U0ADMIN")
    stack.slack.wait_for(lambda: any("expired" in t for t in _ephemerals_to(stack, "U0ADMIN")), 15, "notice")


def test_two_distinct_approvals_and_an_approver_who_requests_needs_another(policy_stack: Stack) -> None:
    stack = policy_stack
    build_image(stack.engine.host, "centos7-two", "two-1", layers=1, seed="two-e2e")
    _, body = stack.command("push centos7-two two-1", user="U0ADMIN")
    job_id = job_id_of(body)
    ts, _ = stack.message_of(job_id)
    stack.click(job_id, "U0ADMIN")  # the requester, though an approver
    stack.click(job_id, "U0ADMIN2")
    stack.slack.wait_for(lambda: "U0ADMIN2" in (stack.slack.messages[("C0OPS", ts)]["text"] or ""), 15,
                         "the first approval shown")
    assert _has_buttons(stack.slack.messages[("C0OPS", ts)])
    stack.click(job_id, "U0ADMIN2")  # the same approver twice counts once
    stack.click(job_id, "U0LEAD")
    final = stack.final_message(job_id)
    assert final["text"].startswith("succeeded")


def test_every_decision_is_in_the_audit_trail_without_secrets(policy_stack: Stack) -> None:
    stack = policy_stack
    secret = f"s3cret-{time.time_ns()}"
    stack.command(f"push centos7-app 1 --password={secret}", user="U0DEV1")
    stack.command("psuh centos7-app 1", user="U0DEV1")
    time.sleep(1)
    entries = [fields for _id, fields in stack.redis.xrange(AUDIT_STREAM)]
    decisions = {(e["kind"], e["decision"]) for e in entries}
    for expected in [("command", "queued"), ("command", "denied"), ("command", "invalid"),
                     ("command", "refused"), ("command", "needs_approval"), ("approval", "approved"),
                     ("approval", "rejected"), ("approval", "expired"), ("approval", "refused"),
                     ("job", "succeeded")]:
        assert expected in decisions, (expected, sorted(decisions))
    blob = json.dumps(entries)
    for value in (secret, stack.bot_token, stack.signing_secret, stack.registry.password):
        assert value not in blob
    refused = [e for e in entries if e["decision"] == "refused" and e["kind"] == "command"]
    assert refused and "[redacted]" in refused[-1]["command"]
    # The audit channel hears about decisions too.
    stack.slack.wait_for(lambda: len([c for c in stack.slack.calls_to("chat.postMessage")
                                      if c.params["channel"] == "C0AUDIT"]) >= 5, 30, "audit channel posts")
    assert secret not in stack.slack.everything_sent()
