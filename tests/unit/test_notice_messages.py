"""Notices (a freeze started or ended) as Slack messages, alone and among the changes that waited with them."""

from __future__ import annotations

from bot.core.announcements import Announcement
from bot.slack.announcement_messages import message

PUSH = Announcement(kind="push", registry="main", server="r.example.com", repository="ns/web", tags=("latest",),
                    digest="sha256:" + "1" * 64, at=1000.0, who="U0DEV1", by_slack=True, job_id="000000000001",
                    how="push")


def test_a_notice_round_trips_and_keeps_the_existing_kinds_unchanged() -> None:
    notice = Announcement.notice("Freeze F1 started: web in every registry — <!channel> hold", 1000.0, "U0ADMIN")
    assert Announcement.from_json(notice.to_json()) == notice
    assert Announcement.from_json(PUSH.to_json()) == PUSH
    assert "text" not in PUSH.to_json()


def test_a_single_notice_is_its_text_and_who_with_nothing_parsed_as_markup() -> None:
    text, blocks = message([Announcement.notice("Freeze F1 started: web — <!channel> *hold*", 1000.0, "U0ADMIN")])
    assert "Freeze F1 started" in text and "<@U0ADMIN>" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert blocks[0]["text"]["text"].startswith(":snowflake: Freeze F1 started")


def test_notices_come_first_among_the_changes_that_waited_with_them() -> None:
    first = Announcement.notice("Freeze F1 started: web", 999.0, "U0ADMIN")
    second = Announcement.notice("Freeze F1 ended early: web", 1001.0, "U0ADMIN")
    text, blocks = message([PUSH, first, second])
    assert text.index("Freeze F1 started") < text.index("Freeze F1 ended") < text.index("r.example.com/ns/web:latest")
    assert [block["type"] for block in blocks][:2] == ["section", "section"]
    assert "Freeze F1 started" in blocks[0]["text"]["text"]
    assert any("latest" in block.get("text", {}).get("text", "") for block in blocks[2:])
    assert len(blocks) <= 50
    text, blocks = message([first, second])
    assert len(blocks) == 2 and "ended early" in text
