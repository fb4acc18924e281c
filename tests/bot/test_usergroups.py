"""User-group memberships from the Slack stand-in: loaded, refreshed, and failing closed."""

from __future__ import annotations

import threading

from bot.slack.client import build_web_client
from bot.slack.usergroups import UserGroupDirectory
from tests.bot.conftest import BOT_TOKEN
from tests.support.slack_standin import SlackStandIn
from workers.kernel.secrets import Secret


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def directory(slack: SlackStandIn, clock: Clock, groups: tuple[str, ...] = ("S0DEVOPS", "S0GONE")
              ) -> UserGroupDirectory:
    client = build_web_client(Secret(BOT_TOKEN), slack.api_url)
    return UserGroupDirectory(client, groups, max_age=600, clock=clock)


def test_members_are_loaded_and_an_unknown_group_reads_as_unknown(slack: SlackStandIn) -> None:
    slack.usergroups["S0DEVOPS"] = ["U0DEV1", "U0DEV2"]
    groups = directory(slack, Clock())
    assert not groups.ready.is_set()
    assert groups.refresh() is False  # S0GONE: no_such_subteam
    assert groups.ready.is_set()
    assert groups.members("S0DEVOPS") == frozenset({"U0DEV1", "U0DEV2"})
    assert groups.members("S0GONE") is None
    assert groups.error("S0GONE") == "no_such_subteam"


def test_a_plan_without_user_groups_fails_closed(slack: SlackStandIn) -> None:
    slack.fail("usergroups.users.list", "plan_upgrade_required")
    groups = directory(slack, Clock(), ("S0DEVOPS",))
    groups.refresh()
    assert groups.members("S0DEVOPS") is None
    assert groups.error("S0DEVOPS") == "plan_upgrade_required"


def test_a_failed_refresh_keeps_the_last_membership_only_while_it_is_young(slack: SlackStandIn) -> None:
    slack.usergroups["S0DEVOPS"] = ["U0DEV1"]
    clock = Clock()
    groups = directory(slack, clock, ("S0DEVOPS",))
    groups.refresh()
    slack.fail("usergroups.users.list", "internal_error")
    clock.now += 300
    assert groups.refresh() is False
    assert groups.members("S0DEVOPS") == frozenset({"U0DEV1"})  # 300 s old: still trusted
    clock.now += 400
    assert groups.members("S0DEVOPS") is None  # 700 s old: too old, fail closed


def test_membership_changes_show_after_a_refresh(slack: SlackStandIn) -> None:
    slack.usergroups["S0DEVOPS"] = ["U0DEV1"]
    groups = directory(slack, Clock(), ("S0DEVOPS",))
    groups.refresh()
    slack.usergroups["S0DEVOPS"] = ["U0DEV2"]
    groups.refresh()
    assert groups.members("S0DEVOPS") == frozenset({"U0DEV2"})


def test_run_loads_at_once_and_stops_when_asked(slack: SlackStandIn) -> None:
    slack.usergroups["S0DEVOPS"] = ["U0DEV1"]
    groups = directory(slack, Clock(), ("S0DEVOPS",))
    stop = threading.Event()
    thread = threading.Thread(target=groups.run, args=(stop,))
    thread.start()
    assert groups.ready.wait(10)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert len(slack.calls_to("usergroups.users.list")) == 1
