"""Structured text: templates, and how Slack and the console render the same text."""

from __future__ import annotations

import pytest

from bot.console.render import render
from bot.core.text import Icon, Kind, Text, bold, channel, code, command, icon, link, markup, plain, t, user
from bot.slack.mrkdwn import mrkdwn


def test_a_template_marks_code_and_bold_in_its_own_literal_only() -> None:
    text = t("*Job {}* — unknown option `--{}`; see {}", code("abc"), "host", "`*not* markup`")
    assert [piece.kind for piece in text] == [Kind.BOLD, Kind.PLAIN, Kind.CODE, Kind.PLAIN, Kind.INPUT]
    assert mrkdwn(text) == "*Job `abc`* — unknown option `--host`; see `*not* markup`"
    assert render(text) == "Job abc — unknown option --host; see `*not* markup`"


def test_placeholders_and_parts_must_match() -> None:
    with pytest.raises(ValueError):
        t("{} and {}", "one")
    with pytest.raises(ValueError):
        t("{}", "one", "two")


def test_an_asterisk_inside_words_or_quotes_is_not_bold() -> None:
    text = markup('users: ["*"] for everyone, or a glob like centos7-*')
    assert all(piece.kind is Kind.PLAIN for piece in text)


@pytest.mark.parametrize(
    ("text", "slack", "console"),
    [
        (t("asked by {} in {}", user("U0DEV1"), channel("C0OPS")), "asked by <@U0DEV1> in <#C0OPS>",
         "asked by @U0DEV1 in #C0OPS"),
        (t("see {}", command("help push")), "see `/registry help push`", "see help push"),
        (icon(Icon.DENIED) + "no", ":no_entry: no", "no"),
        (link("https://example.com/a|b", "docs"), "<https://example.com/a%7Cb|docs>", "docs (https://example.com/a|b)"),
        (t("typed {}", "<!channel> & <@U0X>"), "typed &lt;!channel&gt; &amp; &lt;@U0X&gt;", "typed <!channel> & <@U0X>"),
        (code("a`b<c>"), "`a'b&lt;c&gt;`", "a`b<c>"),
    ],
)
def test_slack_and_console_render_the_same_text(text: Text, slack: str, console: str) -> None:
    assert mrkdwn(text) == slack
    assert render(text) == console


def test_the_console_makes_bold_bold_only_when_asked() -> None:
    text = bold("Docker hosts")
    assert render(text) == "Docker hosts"
    assert render(text, styled=True) == "\x1b[1mDocker hosts\x1b[0m"


def test_a_text_travels_through_json_unchanged_and_junk_reads_as_plain() -> None:
    text = t("{} may not cancel {}", user("U0X"), code("abc"))
    assert Text.from_json(text.to_json()) == text
    assert Text.from_json("not json") == plain("not json")


def test_a_long_typed_value_is_cut() -> None:
    assert code("x" * 100, 64).plain() == "x" * 63 + "…"
