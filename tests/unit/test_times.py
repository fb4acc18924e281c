"""The one duration grammar (workers.kernel.times), as the config, the worker and `regops audit` read it."""

from __future__ import annotations

import pytest

from workers.kernel.times import format_duration, iso_time, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        (" 90 ", 90),
        ("0", 0),
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2m5s", 125),
        ("2h30m", 9000),
        ("7d", 604800),
        ("1w", 604800),
        ("1w2d3h4m5s", 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        (" 2H ", 7200),
        ("0s", 0),
        ("30m1h", 5400),  # `regops audit --since` always took its terms in any order
    ],
)
def test_parse_duration_reads_seconds_and_unit_terms(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", " ", "h", "2 h", "-2h", "+2h", "2y", "1.5h", "2h-", "1e3", "s90", "90 s"])
def test_parse_duration_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_a_bare_number_can_be_refused_where_it_would_be_ambiguous() -> None:
    with pytest.raises(ValueError):
        parse_duration("90", bare_seconds=False)
    assert parse_duration("90s", bare_seconds=False) == 90


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (120, "2m"), (1800, "30m"), (5400, "1h30m"), (3661, "1h1m1s"), (172800, "48h"),
     (0.1, "0.1s"), (2.0, "2s"), (90.5, "1m30.5s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 59, 60, 61, 3599, 3600, 5400, 86399, 86400, 700000])
def test_format_duration_reads_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_iso_time_is_utc_with_milliseconds() -> None:
    assert iso_time(0.25) == "1970-01-01T00:00:00.250Z"
