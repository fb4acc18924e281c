"""Rendering of job states, notifications and replies (Block Kit with a fallback text)."""

from __future__ import annotations

import pytest

from bot.core.outcomes import outcome_text
from bot.core.replies import Reply, ReplyKind
from bot.core.text import channel, code, plain, t, user
from bot.slack.blocks import SECTION_LIMIT, deployment_notification, job_message, reply_body
from tests.support.texts import slack
from workers.kernel.jobs import JobRecord

REF = "dockerhub.example.com:5100/com.example.namespace/centos7-elasticsearch:latest"
DIGEST = "sha256:" + "ab" * 32


def record(**changes: object) -> JobRecord:
    base: dict[str, object] = {
        "job_id": "0123456789ab",
        "action": "push",
        "registry": "main",
        "host": "build-1",
        "requester": "U0DEV1",
        "reference": REF,
        "source": "centos7-elasticsearch:latest",
        "queued_at": 100.0,
        "extra": {"server": "dockerhub.example.com:5100"},
    }
    base.update(changes)
    return JobRecord(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "first_word", "must_contain"),
    [
        ({}, "queued", [REF]),
        ({"state": "running", "started_at": 101.0, "progress": 45}, "running", [REF, "45%"]),
        (
            {"state": "succeeded", "started_at": 101.0, "finished_at": 113.4, "digest": DIGEST},
            "succeeded",
            [REF, DIGEST, "12.4 s"],
        ),
        (
            {
                "state": "failed",
                "started_at": 101.0,
                "finished_at": 102.0,
                "reason": "image_not_found",
                "message": "local image centos7-elasticsearch:latest not found",
            },
            "failed",
            [REF, "local image not found", "centos7-elasticsearch:latest"],
        ),
        ({"state": "failed", "reason": "auth_failed"}, "failed", ["registry authentication failed"]),
        ({"state": "failed", "reason": "timed_out"}, "failed", ["timed out"]),
        (
            {
                "action": "login",
                "reference": None,
                "source": None,
                "state": "succeeded",
                "message": "logged in",
            },
            "succeeded",
            ["dockerhub.example.com:5100", "logged in"],
        ),
        (
            {"action": "tag", "source": "4f2a9c1d7e3b", "state": "succeeded"},
            "succeeded",
            ["4f2a9c1d7e3b", REF],
        ),
    ],
)
def test_the_fallback_text_starts_with_the_state_and_carries_the_key_facts(
    changes: dict, first_word: str, must_contain: list[str]
) -> None:
    text, blocks = job_message(record(**changes))
    assert text.split(":", 1)[0] == first_word
    assert slack(outcome_text(record(**changes))).startswith(first_word)
    for fact in must_contain:
        assert fact in text
    assert "job 0123456789ab" in text and "<@U0DEV1>" in text
    assert blocks and all(b["type"] in ("section", "context", "actions") for b in blocks)
    assert first_word in blocks[0]["text"]["text"]
    buttons = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == (["regops_cancel"] if first_word in ("queued", "running") else [])


def test_running_jobs_show_a_progress_bar() -> None:
    _text, blocks = job_message(record(state="running", progress=50))
    assert any("50%" in b.get("text", {}).get("text", "") and "█" in b["text"]["text"] for b in blocks)


def test_the_deployment_notification_names_reference_digest_and_requester() -> None:
    text, blocks = deployment_notification(record(state="succeeded", digest=DIGEST))
    for fact in (REF, DIGEST, "<@U0DEV1>"):
        assert fact in text
    assert DIGEST in blocks[0]["text"]["text"]


def test_replies_are_ephemeral_and_long_text_is_split_into_sections_within_slacks_limit() -> None:
    long_text = "\n\n".join(f"paragraph {i} " + "x" * 900 for i in range(8))
    body = reply_body(Reply(ReplyKind.HELP, plain(long_text)))
    assert body["response_type"] == "ephemeral"
    assert len(body["blocks"]) > 1
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in body["blocks"])
    assert body["text"].startswith("paragraph 0")


def test_echoed_user_input_cannot_mention_or_link() -> None:
    typed = t("unknown command {} & {} and {}", code("<!channel>"), code("<@U0ADMIN>"), "<https://x|y>")
    body = reply_body(Reply(ReplyKind.USAGE_ERROR, typed))
    assert "<!channel>" not in body["text"] and "<@U0ADMIN>" not in body["text"] and "<https" not in body["text"]
    assert "&lt;!channel&gt;" in body["text"] and "&amp;" in body["blocks"][0]["text"]["text"]


def test_regops_own_mentions_in_a_reply_arrive_as_mentions() -> None:
    """Defect: ephemeral replies escaped the whole text, so regops' own mentions showed as &lt;@U…&gt;."""
    body = reply_body(Reply(ReplyKind.ANSWER, t("{} in {} asked {}", user("U0GRP"), channel("C0OPS"), "<@U0X>")))
    assert body["text"] == "<@U0GRP> in <#C0OPS> asked &lt;@U0X&gt;"
    assert body["blocks"][0]["text"]["text"] == body["text"]


def test_a_running_job_shows_what_the_worker_waits_for() -> None:
    text, _ = job_message(record(state="running", message="retrying in 4 s (attempt 2 of 3): registry unreachable"))
    assert text.startswith("running") and "attempt 2 of 3" in text


def test_a_job_handed_back_to_the_queue_says_so_until_it_starts_again() -> None:
    from workers.kernel.jobs import EventType, JobEvent, state_update

    note = "handed back to the queue: worker w1 stopped before the job finished"
    text, _ = job_message(record(state="queued", message=note))
    assert text.startswith("queued") and "handed back" in text
    fields = state_update(JobEvent(job_id="0123456789ab", type=EventType.STARTED.value, at=1.0))
    assert fields["message"] == "" and fields["state"] == "running"
