"""Guard rails as data: the ``guards:`` section (each problem at its key path) and the questions asked of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.slack.identities import SLACK_IDENTITIES
from workers.kernel.config import parse_config
from workers.kernel.errors import ConfigError
from workers.kernel.guards import FreezeWindow, Guards, Scope


def _base(guards: object = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "registries": {name: {"server": f"{name}.example.com:5100", "services_hostname": "namespace.example.com",
                              "username": "user001@namespace.example.com", "password_env": "REGISTRY_PASSWORD"}
                       for name in ("main", "mirror")},
        "hosts": ["build-1"],
        "default_registry": "main",
    }
    if guards is not None:
        data["guards"] = guards
    return data


def _problems(guards: object) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(_base(guards), SLACK_IDENTITIES)
    return info.value.problems


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() if "+" not in text \
        else datetime.fromisoformat(text).timestamp()


WEEKEND = {"name": "weekend", "cron": "0 18 * * FRI", "duration": "62h", "reason": "no weekend deploys"}


def test_no_section_is_no_rails() -> None:
    assert parse_config(_base()).guards == Guards()
    assert "guards: none" in parse_config(_base()).summary()


def test_a_full_section_is_read_and_summarised() -> None:
    config = parse_config(_base({
        "immutable": [{"images": ["*"], "tags": ["v[0-9]*", "[0-9]*.[0-9]*.[0-9]*"]}],
        "freeze_windows": [{**WEEKEND, "images": ["centos7-*"], "timezone": "Europe/Paris"}],
        "promotion_paths": [{"images": ["*"], "stages": ["dev", "staging", "prod"], "registries": ["main"]}],
    }), SLACK_IDENTITIES)
    guards = config.guards
    assert guards.immutable[0].scope.tags == ("v[0-9]*", "[0-9]*.[0-9]*.[0-9]*")
    assert guards.freeze_windows[0].duration == 62 * 3600 and guards.freeze_windows[0].timezone == "Europe/Paris"
    assert guards.promotion_paths[0].stages == ("dev", "staging", "prod")
    summary = config.summary()
    assert "freeze window weekend: `0 18 * * FRI` (Europe/Paris) for 62h" in summary
    assert "promotion path dev -> staging -> prod" in summary


@pytest.mark.parametrize("guards,expected", [
    ({"immutabel": []}, "guards.immutabel: unknown key; did you mean `immutable`?"),
    ({"immutable": {"tags": ["v*"]}}, "guards.immutable: must be a list of mappings"),
    ({"immutable": [{"images": ["*"]}]}, "guards.immutable[0].tags: is required"),
    ({"immutable": [{"tags": ["v/*"]}]}, "guards.immutable[0].tags[0]: `v/*` can never match"),
    ({"immutable": [{"tags": ["v*"], "registries": ["mian"]}]},
     "guards.immutable[0].registries[0]: `mian` matches no configured registry; did you mean `main`?"),
    ({"freeze_windows": [{**WEEKEND, "cron": "0 18 * * FRY"}]}, "guards.freeze_windows[0].cron: `0 18 * * FRY` is not"),
    ({"freeze_windows": [{**WEEKEND, "cron": "61 * * * *"}]}, "guards.freeze_windows[0].cron: `61 * * * *` is not"),
    ({"freeze_windows": [{**WEEKEND, "duration": "62 hours"}]}, "guards.freeze_windows[0].duration: `62 hours` is not"),
    ({"freeze_windows": [{**WEEKEND, "timezone": "Mars/Olympus"}]},
     "guards.freeze_windows[0].timezone: `Mars/Olympus` is not a known time zone"),
    ({"freeze_windows": [{k: v for k, v in WEEKEND.items() if k != "reason"}]},
     "guards.freeze_windows[0].reason: is required"),
    ({"freeze_windows": [WEEKEND, WEEKEND]}, "guards.freeze_windows: two windows are named `weekend`"),
    ({"promotion_paths": [{"stages": ["prod"]}]}, "guards.promotion_paths[0].stages: needs at least two stages"),
    ({"promotion_paths": [{"stages": ["dev", "dev"]}]}, "guards.promotion_paths[0].stages: `dev` is given twice"),
    ({"promotion_paths": [{"stages": ["dev", "pr od"]}]}, "guards.promotion_paths[0].stages[1]: tag `pr od`"),
    ({"promotion_paths": [{"stages": ["dev", "prod"], "tags": ["*"]}]},
     "guards.promotion_paths[0].tags: unknown key"),
])
def test_each_problem_names_its_key_path(guards: object, expected: str) -> None:
    problems = _problems(guards)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_immutable_rules_cover_by_registry_image_and_tag() -> None:
    guards = parse_config(_base({"immutable": [{"images": ["centos7-*"], "tags": ["v[0-9]*"],
                                                "registries": ["main"]}]})).guards
    assert guards.immutable_rule("main", "centos7-app", "v1.4.2") is not None
    assert guards.immutable_rule("main", "centos7-app", "latest") is None
    assert guards.immutable_rule("mirror", "centos7-app", "v1.4.2") is None
    assert guards.immutable_rule("main", "centos7-app/x", "v1") is None  # `*` stops at `/`
    assert guards.immutable_rule("main", "centos7-app", "v1").name == "guards.immutable[0]"  # type: ignore[union-attr]


def test_a_weekly_window_is_open_from_its_cron_time_for_its_duration() -> None:
    window = FreezeWindow(name="weekend", cron="0 18 * * FRI", duration=62 * 3600, reason="r")
    friday_six = _at("2026-12-04T18:00:00")  # a Friday
    assert window.active(friday_six - 1) is None
    assert window.active(friday_six) == (friday_six, friday_six + 62 * 3600)  # open the very second it starts
    assert window.active(friday_six + 61 * 3600) is not None
    assert window.active(friday_six + 62 * 3600) is None  # Monday 08:00: over
    assert window.next_start(friday_six + 62 * 3600) == friday_six + 7 * 86400


def test_a_window_counts_in_its_time_zone() -> None:
    paris = FreezeWindow(name="evening", cron="0 18 * * *", duration=3600, reason="r", timezone="Europe/Paris")
    assert paris.active(_at("2026-12-04T17:30:00")) is not None  # 18:30 in Paris (UTC+1 in December)
    assert paris.active(_at("2026-12-04T18:30:00")) is None


def test_open_windows_only_for_covered_targets() -> None:
    now = _at("2026-12-05T12:00:00")  # Saturday
    guards = Guards(freeze_windows=(FreezeWindow(name="weekend", cron="0 18 * * FRI", duration=62 * 3600,
                                                 reason="no weekend deploys", scope=Scope(images=("centos7-*",))),))
    [(window, end)] = guards.open_windows(now, "main", "centos7-app", "latest")
    assert window.name == "weekend" and end == _at("2026-12-07T08:00:00")
    assert guards.open_windows(now, "main", "web", "latest") == []
    assert guards.open_windows(_at("2026-12-08T12:00:00"), "main", "centos7-app", "latest") == []


def test_a_promotion_path_names_the_stage_before() -> None:
    guards = parse_config(_base({"promotion_paths": [{"images": ["*"], "stages": ["dev", "staging", "prod"]}]})).guards
    path = guards.path_for("main", "centos7-app", "prod")
    assert path is not None and path.source_of("prod") == "staging" and path.source_of("staging") == "dev"
    assert guards.path_for("main", "centos7-app", "dev") is None  # the first stage is written freely
    assert guards.path_for("main", "centos7-app", "latest") is None
    assert guards.path_for("main", "team/app", "prod") is None  # `*` stops at `/`
