"""Freezes kept in real Redis: started, listed, ended early, and what freezes a target (with the config's windows)."""

from __future__ import annotations

import redis

from workers.kernel.freezes import KEEP_ENDED_SECONDS, end_freeze, frozen, listed, read_freezes, start_freeze
from workers.kernel.guards import FreezeWindow, Guards, Scope
from workers.kernel.keys import FREEZES_KEY

NOW = 1_800_000_000.0  # 2027-01-15T08:00Z, a Friday


def test_a_freeze_applies_to_its_scope_between_start_and_end(redis_client: redis.Redis) -> None:
    freeze = start_freeze(redis_client, Scope(images=("centos7-*",)), NOW, NOW + 3600, "release day", "U0ADMIN")
    assert freeze.id == "F1"
    freezes = read_freezes(redis_client)
    assert freezes == [freeze]
    [why] = frozen(Guards(), freezes, NOW + 10, "main", "centos7-app", "latest")
    assert (why.name, why.reason, why.ends, why.who) == ("freeze F1", "release day", NOW + 3600, "U0ADMIN")
    assert frozen(Guards(), freezes, NOW + 10, "main", "web", "latest") == []
    assert frozen(Guards(), freezes, NOW + 3600, "main", "centos7-app", "latest") == []
    assert frozen(Guards(), freezes, NOW - 1, "main", "centos7-app", "latest") == []


def test_ending_a_freeze_early_lifts_it_and_a_scheduled_one_never_starts(redis_client: redis.Redis) -> None:
    active = start_freeze(redis_client, Scope(), NOW, NOW + 3600, "incident", "U0ADMIN")
    later = start_freeze(redis_client, Scope(), NOW + 7200, NOW + 9000, "maintenance", "U0ADMIN")
    assert [f.id for f in listed(read_freezes(redis_client), NOW + 1)] == [active.id, later.id]
    ended = end_freeze(redis_client, active.id, "U0OPS", NOW + 60)
    assert ended is not None and ended.ended_by == "U0OPS" and ended.effective_end == NOW + 60
    assert frozen(Guards(), read_freezes(redis_client), NOW + 61, "main", "app", "latest") == []
    assert end_freeze(redis_client, active.id, "U0OPS", NOW + 70) is None  # already over
    assert end_freeze(redis_client, "F99", "U0OPS", NOW) is None
    assert end_freeze(redis_client, later.id, "U0OPS", NOW + 100) is not None
    assert frozen(Guards(), read_freezes(redis_client), NOW + 8000, "main", "app", "latest") == []
    assert listed(read_freezes(redis_client), NOW + 100) == []


def test_long_ended_freezes_are_dropped_and_unreadable_entries_skipped(redis_client: redis.Redis) -> None:
    old = start_freeze(redis_client, Scope(), NOW, NOW + 60, "old", "U0ADMIN")
    redis_client.hset(FREEZES_KEY, "F0", "{not json")
    start_freeze(redis_client, Scope(), NOW + 60 + KEEP_ENDED_SECONDS + 1, NOW + 2 * KEEP_ENDED_SECONDS, "new", "U0A")
    ids = [f.id for f in read_freezes(redis_client)]
    assert old.id not in ids and ids == ["F2"]


def test_a_window_of_the_config_and_a_freeze_both_show(redis_client: redis.Redis) -> None:
    guards = Guards(freeze_windows=(FreezeWindow(name="morning", cron="0 8 * * *", duration=3600,
                                                 reason="daily stand-up"),))
    start_freeze(redis_client, Scope(tags=("prod",)), NOW, NOW + 600, "audit", "U0ADMIN")
    names = [f.name for f in frozen(guards, read_freezes(redis_client), NOW + 5, "main", "app", "prod")]
    assert names == ["window morning", "freeze F1"]
    assert [f.name for f in frozen(guards, read_freezes(redis_client), NOW + 5, "main", "app", "dev")] == \
        ["window morning"]
