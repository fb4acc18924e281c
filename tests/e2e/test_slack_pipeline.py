"""End to end over HTTP: signed slash commands → serve → Redis → worker → dockerd/registry → relay → Slack."""

from __future__ import annotations

import time

import docker
import pytest

from tests.e2e.conftest import NAMESPACE, Stack, job_id_of, write_config
from tests.support.services import build_image


def _reference(stack: Stack, image: str, tag: str) -> str:
    return f"{stack.registry.server}/{NAMESPACE}/{image}:{tag}"


def test_push_lands_in_registry_and_final_message_carries_its_digest(stack: Stack) -> None:
    build_image(stack.engine.host, "centos7-elasticsearch", "latest", layers=2, seed="push-e2e")
    status, body = stack.command("push centos7-elasticsearch latest")
    assert status == 200
    assert body["response_type"] == "ephemeral"
    reference = _reference(stack, "centos7-elasticsearch", "latest")
    assert reference in body["text"] and "Queued" in body["text"]
    job_id = job_id_of(body)

    message = stack.final_message(job_id)
    digest = stack.registry.manifest_digest(f"{NAMESPACE}/centos7-elasticsearch", "latest")
    assert digest and digest.startswith("sha256:")
    assert message["text"].startswith("succeeded")
    assert digest in message["text"] and reference in message["text"]
    assert any(digest in block["text"]["text"] for block in message["blocks"] if block["type"] == "section")

    # One message for the job, edited in place: a single postMessage in the command's channel.
    posts = [c for c in stack.slack.calls_to("chat.postMessage")
             if c.params["channel"] == "C0OPS" and f"job {job_id}" in c.params["text"]]
    assert len(posts) == 1
    assert posts[0].params["text"].startswith("queued")
    # The deployment channel hears about it, with reference, digest and requester.
    notice = stack.slack.wait_for(
        lambda: [c for c in stack.slack.calls_to("chat.postMessage")
                 if c.params["channel"] == "C0DEPLOYS" and digest in c.params["text"]],
        30, "the deployment notification")
    assert reference in notice[0].params["text"] and "U0DEV1" in notice[0].params["text"]


def test_pull_brings_the_image_onto_the_engine(stack: Stack) -> None:
    build_image(stack.engine.host, "centos7-pulled", "1.0", layers=1, seed="pull-e2e")
    status, body = stack.command("push centos7-pulled 1.0", user="U0ADMIN")
    assert status == 200
    stack.final_message(job_id_of(body))
    reference = _reference(stack, "centos7-pulled", "1.0")
    api = docker.APIClient(base_url=stack.engine.host)
    try:
        api.remove_image(reference, force=True)
        api.remove_image("centos7-pulled:1.0", force=True)
        with pytest.raises(docker.errors.ImageNotFound):
            api.inspect_image(reference)

        status, body = stack.command("pull centos7-pulled 1.0", user="U0ADMIN")
        assert status == 200
        message = stack.final_message(job_id_of(body))
        assert message["text"].startswith("succeeded"), message["text"]
        image = api.inspect_image(reference)
        digest = stack.registry.manifest_digest(f"{NAMESPACE}/centos7-pulled", "1.0")
        assert f"{reference.rsplit(':', 1)[0]}@{digest}" in image["RepoDigests"]
        assert digest in message["text"]
    finally:
        api.close()


@pytest.mark.parametrize(
    ("user", "text", "expected"),
    [
        ("U0NOBODY", "push centos7-elasticsearch latest", ["push", "centos7-elasticsearch:latest"]),
        ("U0DEV1", "push web-frontend 1.0", ["push", "web-frontend:1.0"]),
    ],
)
def test_a_denied_user_is_told_why_and_nothing_is_queued(stack: Stack, user: str, text: str,
                                                         expected: list[str]) -> None:
    before = stack.job_keys()
    status, body = stack.command(text, user=user)
    assert status == 200 and body["response_type"] == "ephemeral"
    for word in expected:
        assert word in body["text"]
    assert "Queued" not in body["text"]
    assert stack.job_keys() == before
    assert stack.queue_lengths() == {"build-1": 0, "build-bad": 0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("psuh centos7-elasticsearch latest", "push"),
        ("push centos7-elasticsearch", "TAG"),
        ("push Centos7 latest", "upper-case"),
        ("push centos7-elasticsearch lat:est", "tag"),
        ("push centos7-elasticsearch latest --host build-9", "build-1"),
        ("push centos7-elasticsearch latest --registry other", "main"),
    ],
)
def test_an_invalid_command_gets_a_clear_answer_and_queues_nothing(stack: Stack, text: str,
                                                                   expected: str) -> None:
    before = stack.job_keys()
    status, body = stack.command(text, user="U0ADMIN")
    assert status == 200 and body["response_type"] == "ephemeral"
    assert expected in body["text"]
    assert "Traceback" not in body["text"] and "Queued" not in body["text"]
    assert stack.job_keys() == before


def test_credentials_in_chat_are_refused_and_never_stored(stack: Stack) -> None:
    secret = "hunter2-" + str(time.time_ns())
    status, body = stack.command(f"login -u admin -p{secret}", user="U0ADMIN")
    assert status == 200
    assert "rotate" in body["text"].lower()
    assert secret not in body["text"]
    time.sleep(0.5)
    assert secret not in stack.redis_dump()
    assert secret not in stack.logs()
    assert secret not in stack.slack.everything_sent()


def test_forged_and_stale_signatures_get_401_and_change_nothing(stack: Stack) -> None:
    before = stack.job_keys()
    status, _ = stack.command("push centos7-elasticsearch latest", secret="not-the-signing-secret")
    assert status == 401
    status, _ = stack.command("push centos7-elasticsearch latest", timestamp=int(time.time()) - 6 * 60)
    assert status == 401
    assert stack.job_keys() == before


def test_pushing_a_missing_local_image_fails_with_a_clear_message(stack: Stack) -> None:
    status, body = stack.command("push centos7-missing 9.9")
    assert status == 200
    message = stack.final_message(job_id_of(body))
    assert message["text"].startswith("failed")
    assert "local image not found" in message["text"]
    assert "Traceback" not in message["text"]


def test_a_wrong_registry_password_fails_as_authentication_and_leaks_nowhere(stack: Stack) -> None:
    build_image(stack.engine.host, "centos7-auth", "1", layers=1, seed="auth-e2e")
    status, body = stack.command("push centos7-auth 1 --host build-bad")
    assert status == 200
    message = stack.final_message(job_id_of(body))
    assert message["text"].startswith("failed")
    assert "authentication" in message["text"]
    for secret in (stack.wrong_password, stack.registry.password, stack.signing_secret):
        assert secret not in stack.slack.everything_sent()
        assert secret not in stack.redis_dump()
        assert secret not in stack.logs()
    assert stack.bot_token not in stack.logs() and stack.bot_token not in stack.redis_dump()


def test_login_checks_the_account(stack: Stack) -> None:
    status, body = stack.command("login", user="U0DEV1")
    assert status == 200
    message = stack.final_message(job_id_of(body))
    assert message["text"].startswith("succeeded"), message["text"]
    assert stack.registry.server in message["text"]


def test_when_the_bot_is_not_in_the_channel_the_response_url_carries_the_result(stack: Stack) -> None:
    stack.slack.fail("chat.postMessage", "not_in_channel", channel="C0PRIVATE")
    build_image(stack.engine.host, "centos7-private", "2", layers=1, seed="private-e2e")
    response_url = stack.slack.response_url("private")
    status, body = stack.command("push centos7-private 2", channel="C0PRIVATE", response_url=response_url)
    assert status == 200
    job_id = job_id_of(body)
    posts = stack.slack.wait_for(
        lambda: [b for path, b in stack.slack.responses
                 if path.endswith("/private") and b["text"].startswith("succeeded")],
        120, "the outcome on the response_url")
    assert f"job {job_id}" in posts[0]["text"]
    assert posts[0]["response_type"] == "in_channel"


def test_healthz_answers_200_while_redis_is_reachable(stack: Stack) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{stack.serve.url}/healthz", timeout=5) as response:
        assert response.status == 200


def test_healthz_answers_503_while_redis_is_unreachable(stack: Stack, tmp_path) -> None:
    import urllib.error
    import urllib.request

    from tests.support.services import free_port
    from tests.support.stack import ServeProcess

    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "SLACK_API_URL": stack.slack.api_url,
           "SLACK_BOT_TOKEN": stack.bot_token, "SLACK_SIGNING_SECRET": stack.signing_secret}
    config = write_config(tmp_path, stack.registry)
    with ServeProcess(env, str(config)) as orphan:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"{orphan.url}/healthz", timeout=5)
        assert answer.value.code == 503


def test_a_command_that_mentions_payload_is_answered(stack: Stack) -> None:
    """Bolt read any form body containing the word "payload" as an empty interactive payload: no answer."""
    status, body = stack.command("can-i push payload-api 1", user="U0ADMIN")
    assert status == 200, status
    assert body.get("response_type") == "ephemeral" and "payload-api:1" in body["text"], body
    status, body = stack.command("push payload-api 1 --source my-payload:dev", user="U0ADMIN")
    assert status == 200 and body["text"].startswith(":inbox_tray: Queued push of "), body
