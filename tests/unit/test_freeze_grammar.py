"""The grammar of `freeze`, `unfreeze` and `freezes`, the pinned promote, and `--until` read against a clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.core.errors import CommandError
from bot.core.grammar.freezes import until_time
from bot.core.grammar.parser import parse
from tests.support.texts import slack
from workers.kernel.errors import UsageError

DIGEST = "sha256:" + "a" * 64


def _at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC).timestamp()


def test_freeze_reads_its_glob_tags_registry_duration_and_reason() -> None:
    command = parse('/registry freeze centos7-* --tags prod,v* --registry main --for 90m --reason "release  week"')
    assert command.action == "freeze" and command.glob == "centos7-*" and command.tag_globs == ("prod", "v*")
    assert command.registry == "main" and command.duration == 5400 and command.until is None
    assert command.reason == "release week"
    assert command.text == "freeze 'centos7-*' --registry main --tags 'prod,v*' --for 90m --reason 'release week'"


@pytest.mark.parametrize(("typed", "kept"), [("2026-12-24T18:00Z", "2026-12-24T18:00Z"),
                                             ("2026-12-24T18:00", "2026-12-24T18:00Z"), ("18:00", "18:00"),
                                             ("7:05", "07:05")])
def test_until_takes_a_moment_or_a_time_of_day(typed: str, kept: str) -> None:
    assert parse(f"freeze web --until {typed} --reason x").until == kept


@pytest.mark.parametrize(("text", "fragment"), [
    ("freeze web --for 2h", "needs `--reason TEXT`"),
    ("freeze web --reason x", "give `--for DURATION`"),
    ("freeze web --for 2h --until 18:00 --reason x", "one of them"),
    ("freeze web --for 90 --reason x", "not a duration"),
    ("freeze web --for 30s --reason x", "from 1 minute to 90 days"),
    ("freeze web --for 91d --reason x", "from 1 minute to 90 days"),
    ("freeze web --until 24:00 --reason x", "is not a time in UTC"),
    ("freeze web --until 2026-02-30T10:00Z --reason x", "is not a time in UTC"),
    ("freeze web --until tomorrow --reason x", "is not a time in UTC"),
    ("freeze web --for 2h --reason release week", "put the reason in quotes"),
    ("freeze web --for 2h --reason '   '", "`--reason` is empty"),
    ("freeze web --for 2h --reason '" + "x" * 201 + "'", "at most 200"),
    ("freeze web,api --for 2h --reason x", "one IMAGE_GLOB"),
    ("freeze --for 2h --reason x", "is missing IMAGE_GLOB"),
    ("freeze web --tags 'a b' --for 2h --reason x", "--tags"),
    ("freeze web --host build-1 --for 2h --reason x", "not an option of `freeze`"),
    ("unfreeze S3", "is not a freeze id"),
    ("unfreeze", "is missing ID"),
    ("freezes all", "unexpected extra argument"),
])
def test_bad_freeze_commands_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    assert fragment in slack(info.value)


def test_unfreeze_and_freezes() -> None:
    assert parse("unfreeze `f12`").freeze_id == "F12"
    assert parse("freezes").action == "freezes"
    assert parse("can-i freeze --registry main").subject_action == "freeze"


def test_until_a_moment_is_that_moment_and_a_past_one_is_refused() -> None:
    now = _at("2026-12-02T10:00")
    assert until_time("2026-12-24T18:00Z", now) == _at("2026-12-24T18:00")
    with pytest.raises(CommandError) as info:
        until_time("2026-12-01T18:00Z", now)
    assert "has already passed" in slack(info.value)
    with pytest.raises(CommandError) as info:
        until_time("2027-12-01T18:00Z", now)
    assert "more than" in slack(info.value)


def test_until_a_time_of_day_is_today_and_one_already_past_is_refused_naming_tomorrow() -> None:
    now = _at("2026-12-02T10:00")
    assert until_time("18:00", now) == _at("2026-12-02T18:00")
    with pytest.raises(CommandError) as info:
        until_time("09:30", now)
    text = slack(info.value)
    assert "already passed" in text and "`--until 2026-12-03T09:30Z`" in text
    with pytest.raises(CommandError):
        until_time("10:00", now)  # exactly now is not in the future


def test_promote_from_a_pinned_stage_keeps_the_tag_and_the_digest() -> None:
    command = parse(f"promote web staging@{DIGEST.upper().replace('SHA256', 'sha256')} prod")
    assert command.tag == "staging" and command.digest == DIGEST and command.target_tag == "prod"
    assert command.text == f"promote web staging@{DIGEST} prod"
    bare = parse(f"promote web @{DIGEST} prod")
    assert bare.tag is None and bare.digest == DIGEST
    with pytest.raises(UsageError) as info:
        parse("promote web staging@sha256:abc prod")
    assert "has 3 hex digits" in slack(info.value)


@pytest.mark.parametrize("text", ['push web prod --override "hotfix 12"', 'promote web dev prod --override "hotfix 12"',
                                  'delete web old --override "hotfix 12"', 'rollback web prod --override "hotfix 12"'])
def test_the_writes_take_a_break_glass_override(text: str) -> None:
    command = parse(text)
    assert command.override == "hotfix 12" and "--override 'hotfix 12'" in command.text


@pytest.mark.parametrize(("text", "fragment"), [
    ("pull web prod --override x", "not an option of `pull`"),
    ("push web prod --override '  '", "`--override` is empty"),
    ("push web prod --override '" + "y" * 201 + "'", "at most 200"),
])
def test_a_bad_override_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(text)
    assert fragment in slack(info.value)
