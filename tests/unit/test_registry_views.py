"""The registry commands' answers (bot.core.registry_views): tags, inspect, history, promote's summary."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.registry_views import (
    TEXT_BUDGET,
    change_line,
    history_text,
    human_size,
    inspect_text,
    media_type_text,
    promote_summary,
    short_digest,
    shown_length,
    tags_text,
)
from bot.core.text import Kind
from tests.support.texts import slack
from workers.kernel.history import TagChange

DIGEST = "sha256:" + "0123456789abcdef" * 4
OTHER = "sha256:" + "fedcba9876543210" * 4
REPOSITORY = "127.0.0.1:5000/com.example.ns/centos7-es"
REFERENCE = f"{REPOSITORY}:prod"
AT = 1764633600.0  # 2025-12-02T00:00:00Z
SLACK_LIMIT = 3000


def _tags(**changes: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "repository": REPOSITORY, "image": "centos7-es", "total": 3, "matched": 3, "match": None, "limit": 50,
        "tags": [
            {"tag": "latest", "digest": DIGEST, "changed_at": AT + 60},
            {"tag": "1.4.2", "digest": DIGEST, "changed_at": AT},
            {"tag": "1.4.1", "digest": OTHER, "changed_at": None},
        ],
    }
    answer.update(changes)
    return answer


def _change(index: int = 0, **fields: Any) -> TagChange:
    values: dict[str, Any] = {"at": AT + index * 60, "reference": REFERENCE, "digest": DIGEST, "previous": OTHER,
                              "who": "U0DEV1", "how": "promote", "job_id": "0123456789ab",
                              "source": f"{REPOSITORY}:staging"}
    values.update(fields)
    return TagChange(**values)


def _inspect(**changes: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "reference": REFERENCE, "digest": DIGEST, "media_type": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 12_345_678, "layers": 7, "created": "2026-11-30T12:00:00Z",
        "labels": {"org.opencontainers.image.version": "1.4.2", "maintainer": "ops <ops@example.com>"},
        "platforms": [], "config_of": None,
    }
    answer.update(changes)
    return answer


# ---- small pieces ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (12_345_678, "12.3 MB"), (999_960, "1.0 MB"),
     (1_234_567_890, "1.2 GB"), (5 * 10**15, "5.0 PB")],
)
def test_human_sizes_are_decimal_as_docker_shows_them(size: int, shown: str) -> None:
    assert human_size(size) == shown


@pytest.mark.parametrize(
    ("media_type", "shown"),
    [
        ("application/vnd.oci.image.index.v1+json", "OCI index (`application/vnd.oci.image.index.v1+json`)"),
        ("application/vnd.docker.distribution.manifest.list.v2+json", "Docker manifest list (`"),
        ("application/vnd.docker.distribution.manifest.v2+json", "Docker image manifest (`"),
        ("application/vnd.oci.image.manifest.v1+json", "OCI image manifest (`"),
        ("application/x-odd", "manifest of type `application/x-odd`"),
        ("", "manifest of unknown type"),
    ],
)
def test_media_types_are_named_plainly_with_the_string_in_code(media_type: str, shown: str) -> None:
    assert slack(media_type_text(media_type)).startswith(shown)


def test_a_short_digest_is_its_first_twelve_hex_digits_in_code() -> None:
    (piece,) = short_digest(DIGEST)
    assert (piece.kind, piece.value) == (Kind.CODE, "0123456789ab")
    assert slack(short_digest(None)) == "no digest"


def test_promote_summary() -> None:
    assert slack(promote_summary("r/ns/a:staging", "r/ns/b:prod", DIGEST)) == f"`r/ns/a:staging` → `r/ns/b:prod` (`{DIGEST}`)"
    assert slack(promote_summary("r/ns/a:staging", "r/ns/b:prod")) == "`r/ns/a:staging` → `r/ns/b:prod`"


def test_shown_length_counts_what_slack_shows() -> None:
    text = tags_text(_tags(repository="a&b<c>"))
    assert shown_length(text) >= len(slack(text))


# ---- tags --------------------------------------------------------------------------------------------------


def test_tags_lists_each_tag_with_its_short_digest_and_when_it_moved() -> None:
    text = slack(tags_text(_tags()))
    assert text.splitlines() == [
        f"*Tags of `{REPOSITORY}`*: 3 tag(s), newest change first, then by name:",
        "• `latest` `0123456789ab` · changed 2025-12-02T00:01:00.000Z",
        "• `1.4.2` `0123456789ab` · changed 2025-12-02T00:00:00.000Z",
        "• `1.4.1` `fedcba987654`",
    ]


def test_tags_says_how_many_more_there_are() -> None:
    entries = [{"tag": f"v{index}", "digest": DIGEST, "changed_at": None} for index in range(50)]
    text = slack(tags_text(_tags(total=1000, matched=980, match="v*", tags=entries)))
    lines = text.splitlines()
    assert lines[0] == f"*Tags of `{REPOSITORY}`*: 50 of 980 tag(s) matching `v*` (1000 in all), newest change first, then by name:"
    assert len(lines) == 52
    assert lines[-1] == "… and 930 more (use `--limit N` or `--match GLOB`)."


def test_long_tag_lists_are_cut_to_fit_slack_with_a_count() -> None:
    entries = [{"tag": f"{index:03d}" + "x" * 125, "digest": DIGEST, "changed_at": AT} for index in range(1000)]
    text = tags_text(_tags(total=1000, matched=1000, tags=entries))
    shown = slack(text)
    assert len(shown) <= TEXT_BUDGET < SLACK_LIMIT
    listed = [line for line in shown.splitlines() if line.startswith("• ")]
    assert 5 < len(listed) < 1000
    assert shown.splitlines()[-1] == f"… and {1000 - len(listed)} more (use `--limit N` or `--match GLOB`)."
    assert f"{len(listed)} of 1000 tag(s)" in shown.splitlines()[0]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"total": 0, "matched": 0, "tags": []}, f"`{REPOSITORY}` has no tags in the registry."),
        ({"total": 0, "matched": 0, "match": "v*", "tags": []}, f"`{REPOSITORY}` has no tags in the registry."),
        (
            {"total": 12, "matched": 0, "match": "v9*", "tags": []},
            f"No tag of `{REPOSITORY}` matches `v9*` (12 tag(s) in all). Try another `--match GLOB`, or leave it out.",
        ),
    ],
)
def test_an_empty_tags_answer_says_so(changes: dict[str, Any], expected: str) -> None:
    assert slack(tags_text(_tags(**changes))) == expected


def test_tags_from_the_registry_are_never_markup() -> None:
    text = slack(tags_text(_tags(tags=[{"tag": "<!channel>", "digest": DIGEST, "changed_at": None}])))
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text


# ---- history -----------------------------------------------------------------------------------------------


def test_history_lists_changes_newest_first_with_who_how_and_the_job() -> None:
    changes = [
        _change(0, how="push", digest=OTHER, previous=None, source=None),
        _change(2, how="rollback", digest=OTHER, previous=DIGEST, source=None),
        _change(1),
    ]
    lines = slack(history_text(REFERENCE, changes)).splitlines()
    assert lines == [
        f"*History of `{REFERENCE}`*: 3 change(s) regops knows of, newest first:",
        "• 2025-12-02T00:02:00.000Z — rollback by <@U0DEV1>: `fedcba987654` (was `0123456789ab`), job `0123456789ab`",
        (f"• 2025-12-02T00:01:00.000Z — promote by <@U0DEV1>: `0123456789ab` (was `fedcba987654`), "
         f"from `{REPOSITORY}:staging`, job `0123456789ab`"),
        "• 2025-12-02T00:00:00.000Z — push by <@U0DEV1>: `fedcba987654` (new), job `0123456789ab`",
    ]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (_change(how="registry event", who="user001@namespace.example.com", job_id=None, source=None),
         "registry event by `user001@namespace.example.com`: `0123456789ab` (was `fedcba987654`)"),
        # A registry account that looks like a Slack ID is still an account when the registry reported it.
        (_change(how="registry event", who="UADMIN", job_id=None, source=None), "registry event by `UADMIN`"),
        (_change(how="delete", digest=None, previous=DIGEST, source=None), "delete by <@U0DEV1>: deleted (was `0123456789ab`)"),
        (_change(who="W0ENTERPRISE"), "promote by <@W0ENTERPRISE>"),
        (_change(who=""), "promote by an unknown account"),
    ],
)
def test_history_names_who_and_what(change: TagChange, fragment: str) -> None:
    assert fragment in slack(change_line(change))


def test_an_empty_history_says_regops_knows_no_change_yet() -> None:
    text = slack(history_text(REFERENCE, []))
    assert text.startswith(f"regops knows no change of `{REFERENCE}` yet.")
    assert "changes made outside regops show once the registry's notifications are set up" in text


def test_a_long_history_is_cut_to_fit_slack_with_a_count() -> None:
    changes = [_change(index) for index in range(100)]
    shown = slack(history_text(REFERENCE, changes))
    assert len(shown) <= TEXT_BUDGET
    listed = [line for line in shown.splitlines() if line.startswith("• ")]
    assert 5 < len(listed) < 100
    assert shown.splitlines()[-1] == f"… and {100 - len(listed)} older change(s), not shown."
    assert listed[0].startswith("• 2025-12-02T01:39:00.000Z")


# ---- inspect -----------------------------------------------------------------------------------------------


def test_inspect_a_single_image() -> None:
    lines = slack(inspect_text(_inspect(), [_change(1), _change(0, how="push", previous=None, source=None)])).splitlines()
    assert lines == [
        f"*Manifest of `{REFERENCE}`*",
        f"• digest `{DIGEST}`",
        "• Docker image manifest (`application/vnd.docker.distribution.manifest.v2+json`)",
        "• 12.3 MB compressed, 7 layer(s)",
        "• created 2026-11-30T12:00:00Z",
        "*Labels* (2):",
        "• `maintainer`: `ops &lt;ops@example.com&gt;`",
        "• `org.opencontainers.image.version`: `1.4.2`",
        "*Last changes of the tag* (newest first):",
        (f"• 2025-12-02T00:01:00.000Z — promote by <@U0DEV1>: `0123456789ab` (was `fedcba987654`), "
         f"from `{REPOSITORY}:staging`, job `0123456789ab`"),
        "• 2025-12-02T00:00:00.000Z — push by <@U0DEV1>: `0123456789ab` (new), job `0123456789ab`",
    ]


def test_inspect_an_index_shows_every_platform_and_whose_config_it_read() -> None:
    answer = _inspect(
        media_type="application/vnd.oci.image.index.v1+json", size=24_000_000, layers=10, config_of="linux/amd64",
        platforms=[{"platform": "linux/amd64", "digest": DIGEST, "size": 12_000_000, "layers": 5},
                   {"platform": "linux/arm64/v8", "digest": OTHER, "size": 12_000_000, "layers": 5}],
    )
    text = slack(inspect_text(answer, []))
    for fragment in [
        "• OCI index (`application/vnd.oci.image.index.v1+json`)",
        "• 24.0 MB compressed, 10 layer(s) across its 2 platform(s)",
        "• created 2026-11-30T12:00:00Z (the config of `linux/amd64`)",
        ("*Platforms* (2):\n• `linux/amd64` `0123456789ab` — 12.0 MB, 5 layer(s)\n"
        "• `linux/arm64/v8` `fedcba987654` — 12.0 MB, 5 layer(s)"),
        "*Labels* of `linux/amd64` (2):",
        "*Last changes of the tag*: regops knows none yet.",
    ]:
        assert fragment in text, text


def test_inspect_by_digest_without_history_has_no_history_section_and_says_so_of_labels() -> None:
    text = slack(inspect_text(_inspect(reference=f"{REPOSITORY}@{DIGEST}", labels={}, created=None), []))
    assert text.splitlines()[0] == f"*Manifest of `{REPOSITORY}@{DIGEST}`*"
    assert "*Labels*: none" in text
    assert "created" not in text
    assert "Last changes" not in text


def test_inspect_shows_the_last_five_changes_and_points_to_history() -> None:
    text = slack(inspect_text(_inspect(), [_change(index) for index in range(12)]))
    changes = [line for line in text.splitlines() if line.startswith("• 2025-")]
    assert len(changes) == 5
    assert changes[0].startswith("• 2025-12-02T00:11:00.000Z")
    assert "… and 7 older change(s): `/registry history IMAGE TAG` shows them all." in text


def test_inspect_caps_labels_with_a_count() -> None:
    labels = {f"label.{index:02d}": "v" for index in range(45)}
    text = slack(inspect_text(_inspect(labels=labels), []))
    assert "*Labels* (45):" in text
    assert text.count("• `label.") == 20
    assert "… and 25 more label(s)." in text


def test_the_biggest_inspect_answer_still_fits_slack() -> None:
    answer = _inspect(
        reference="r" * 500 + ":" + "t" * 128,
        media_type="application/" + "x" * 500,
        created="2026-11-30T12:00:00Z" + "z" * 200,
        config_of="linux/amd64" + "p" * 100,
        labels={"k" * 200 + str(index): "<&>" * 300 for index in range(100)},
        platforms=[{"platform": "linux/" + "q" * 100, "digest": DIGEST, "size": 10**12, "layers": 10**6}] * 300,
    )
    history = [_change(index, who="x" * 300, source="s" * 500, how="registry event") for index in range(100)]
    text = slack(inspect_text(answer, history))
    assert len(text) <= SLACK_LIMIT
    assert "more platform(s)." in text
    assert "more label(s)." in text
    assert "older change(s)" in text


def test_inspect_tolerates_missing_fields() -> None:
    text = slack(inspect_text({"reference": REFERENCE}, []))
    assert "• digest unknown" in text
    assert "• manifest of unknown type" in text
    assert "• 0 B compressed, 0 layer(s)" in text
