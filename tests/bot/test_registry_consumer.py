"""Registry events → tag history and outboxes, on real Redis: each change announced once per channel."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from bot.core.announcements import Announcement
from bot.core.envelopes import parse_envelope
from bot.core.event_intake import EventIntake
from bot.core.registry_changes import DELETE_HOLD_SECONDS
from bot.core.registry_events import RegistryEvent
from bot.core.routing import Router
from bot.core.subscriptions import Subscription, SubscriptionStore
from bot.slack.registry_consumer import RegistryEventConsumer
from workers.events import EventWriter
from workers.kernel.config import Config, parse_config
from workers.kernel.config.model import NotificationRoute
from workers.kernel.expectations import Expectation, expect
from workers.kernel.history import TagChange, read_history, record_changes
from workers.kernel.keys import (
    OUTBOX_DUE_KEY,
    REGISTRY_EVENTS_GROUP,
    REGISTRY_EVENTS_STREAM,
    SUBSCRIPTIONS_KEY,
    expectation_key,
    outbox_key,
)

ENVELOPES = Path(__file__).parents[1] / "support" / "registry_envelopes"
SERVER = "registry.example.com"
REPO = "com.example.namespace/centos7-elasticsearch"
D1, D2, D3 = ("sha256:" + c * 64 for c in "123")
CONFIG = {
    "registries": {"main": {"server": SERVER, "services_hostname": "namespace.example.com", "username": "ci-bot",
                            "password_env": "REGISTRY_PASSWORD"}},
    "default_registry": "main",
    "hosts": ["build-1"],
    "notify_channel": "C0DEPLOYS",
    "access": {"roles": {"admin": {"actions": ["*"]}}, "grants": [{"role": "admin", "users": ["U0ADMIN"]}]},
}
SEARCH = NotificationRoute(channel="C0SEARCH", images=("centos7-elasticsearch",), tags=("*",),
                           events=frozenset({"push", "delete"}))


def make_config(*routes: NotificationRoute) -> Config:
    return replace(parse_config(CONFIG), routes=routes or (SEARCH,))


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


def make_consumer(connection: redis.Redis, config: Config | None = None, name: str = "serve-1",
                  claim_idle_ms: int = 30_000, router: Router | None = None) -> RegistryEventConsumer:
    config = config or make_config()
    consumer = RegistryEventConsumer(connection, config,
                                     router or Router(config, SubscriptionStore(connection).all),
                                     consumer=name, claim_idle_ms=claim_idle_ms, clock=CLOCK)
    consumer.ensure_group()
    return consumer


_ids = iter(range(1, 10_000))


def event(action: str = "push", tag: str | None = "latest", digest: str | None = D1, at: float | None = None,
          repository: str = REPO) -> RegistryEvent:
    n = next(_ids)
    return RegistryEvent(registry="main", id=f"ev-{n}", action=action, repository=repository,
                         at=at if at is not None else 1000.0 + n, tag=tag, digest=digest,
                         media_type="application/vnd.oci.image.manifest.v1+json", actor="ci-bot",
                         address="10.0.0.7")


def add(connection: redis.Redis, *events: RegistryEvent) -> list[str]:
    return [connection.xadd(REGISTRY_EVENTS_STREAM, dict(e.to_fields())) for e in events]


def outbox(connection: redis.Redis, channel: str) -> list[Announcement]:
    return [Announcement.from_json(raw) for raw in connection.lrange(outbox_key(channel), 0, -1)]


def ref(tag: str = "latest") -> str:
    return f"{SERVER}/{REPO}:{tag}"


def pending(connection: redis.Redis) -> int:
    return int(connection.xpending(REGISTRY_EVENTS_STREAM, REGISTRY_EVENTS_GROUP)["pending"])


def job_change(job_id: str, digest: str | None, previous: str | None, tag: str = "latest",
               how: str = "push") -> TagChange:
    return TagChange(at=999.0, reference=ref(tag), digest=digest, previous=previous, who="U0DEV1", how=how,
                     job_id=job_id)


def settled(consumer: RegistryEventConsumer) -> int:
    """Step once the deletes' gathering is over."""
    CLOCK.now += DELETE_HOLD_SECONDS + 0.1
    return consumer.step()


def test_a_push_from_outside_is_a_new_tag_then_moves(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event(digest=D1))
    assert consumer.step() == 1
    (first,) = outbox(text_redis, "C0SEARCH")
    assert (first.kind, first.tags, first.digest, first.previous) == ("push", ("latest",), D1, None)
    assert (first.who, first.by_slack, first.job_id, first.address) == ("ci-bot", False, None, "10.0.0.7")
    assert first.references() == [ref()]
    assert outbox(text_redis, "C0DEPLOYS") == [first]
    assert text_redis.zscore(OUTBOX_DUE_KEY, "C0SEARCH") == CLOCK.now
    (change,) = read_history(text_redis, ref())
    assert (change.digest, change.previous, change.who, change.how, change.job_id) == (
        D1, None, "ci-bot", "registry event", None)

    add(text_redis, event(digest=D2))
    consumer.step()
    moved = outbox(text_redis, "C0SEARCH")[-1]
    assert (moved.digest, moved.previous) == (D2, D1)
    assert [c.digest for c in read_history(text_redis, ref())] == [D2, D1]
    assert pending(text_redis) == 0


def test_a_push_of_the_digest_the_tag_has_is_no_change(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event(digest=D1), event(digest=D1))
    assert consumer.step() == 2
    assert len(outbox(text_redis, "C0SEARCH")) == 1
    assert len(read_history(text_redis, ref())) == 1
    assert pending(text_redis) == 0


def test_a_manifest_delete_is_announced_once_with_its_tags(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event(tag="latest", digest=D1), event(tag="v1", digest=D1), event(tag="v2", digest=D2))
    consumer.step()
    # Distribution: the manifest's event, then one event per tag that went with it.
    add(text_redis, event("delete", tag=None, digest=D1), event("delete", tag="latest", digest=None),
        event("delete", tag="v1", digest=None))
    assert consumer.step() == 3
    assert [a.kind for a in outbox(text_redis, "C0SEARCH")] == ["push"] * 3  # gathering the delete's events
    assert read_history(text_redis, ref())[0].digest == D1
    assert settled(consumer) == 1
    deletes = [a for a in outbox(text_redis, "C0SEARCH") if a.kind == "delete"]
    assert len(deletes) == 1
    assert (deletes[0].digest, deletes[0].tags, deletes[0].who) == (D1, ("latest", "v1"), "ci-bot")
    assert settled(consumer) == 0
    assert [a.kind for a in outbox(text_redis, "C0DEPLOYS")] == ["push", "push", "push"]  # pushes only
    for tag in ("latest", "v1"):
        history = read_history(text_redis, ref(tag))
        assert [(c.digest, c.previous) for c in history] == [(None, D1), (D1, None)]
    assert [c.digest for c in read_history(text_redis, ref("v2"))] == [D2]
    assert pending(text_redis) == 0


def test_a_tag_event_before_its_manifest_event_is_announced_once(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event(tag="latest", digest=D1))
    consumer.step()
    add(text_redis, event("delete", tag="latest", digest=None), event("delete", tag=None, digest=D1))
    consumer.step()
    settled(consumer)
    deletes = [a for a in outbox(text_redis, "C0SEARCH") if a.kind == "delete"]
    assert [(a.digest, a.tags) for a in deletes] == [(D1, ("latest",))]
    assert [(c.digest, c.previous) for c in read_history(text_redis, ref())] == [(None, D1), (D1, None)]


def test_a_delete_names_the_tags_whose_events_came_though_regops_never_knew_them(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event(tag="known", digest=D1))
    consumer.step()
    # "old" and "older" were pushed before regops listened: only their delete events name them.
    add(text_redis, event("delete", tag=None, digest=D1), event("delete", tag="known", digest=None),
        event("delete", tag="old", digest=None), event("delete", tag="older", digest=None))
    consumer.step()
    settled(consumer)
    (gone,) = [a for a in outbox(text_redis, "C0SEARCH") if a.kind == "delete"]
    assert (gone.digest, gone.tags) == (D1, ("known", "old", "older"))
    assert [(c.digest, c.previous) for c in read_history(text_redis, ref("old"))] == [(None, D1)]
    # A tag event coming long after the delete was announced, of a tag regops never knew, adds nothing.
    add(text_redis, event("delete", tag="latecomer", digest=None))
    consumer.step()
    settled(consumer)
    assert len([a for a in outbox(text_redis, "C0SEARCH") if a.kind == "delete"]) == 1
    assert read_history(text_redis, ref("latecomer")) == []


def test_a_gathered_delete_left_by_a_dead_process_is_announced_once_by_another(text_redis: redis.Redis) -> None:
    first = make_consumer(text_redis, name="serve-1")
    add(text_redis, event(tag="latest", digest=D1))
    first.step()
    add(text_redis, event("delete", tag=None, digest=D1), event("delete", tag="latest", digest=None))
    first.step()  # gathered (and acknowledged), then serve-1 dies before announcing it
    assert pending(text_redis) == 0
    second = make_consumer(text_redis, name="serve-2")
    assert settled(second) == 1
    assert settled(first) == 0
    assert len([a for a in outbox(text_redis, "C0SEARCH") if a.kind == "delete"]) == 1


def test_a_delete_of_a_digest_no_tag_is_known_of_names_the_digest(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event("delete", tag=None, digest=D3))
    consumer.step()
    settled(consumer)
    (gone,) = outbox(text_redis, "C0SEARCH")
    assert (gone.kind, gone.digest, gone.tags) == ("delete", D3, ())
    assert gone.references() == [f"{SERVER}/{REPO}@{D3}"]


def test_a_regops_push_whose_event_comes_first_is_the_jobs_once(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event(digest=D1))
    consumer.step()
    expect(text_redis, "main", REPO, "latest", Expectation("job000000007", "U0DEV1", "push"))
    add(text_redis, event(digest=D2))
    consumer.step()
    announced = outbox(text_redis, "C0SEARCH")[-1]
    assert (announced.who, announced.by_slack, announced.job_id, announced.how) == (
        "U0DEV1", True, "job000000007", "push")
    assert (announced.digest, announced.previous) == (D2, D1)
    assert text_redis.get(expectation_key("main", REPO, "latest")) is None
    # The job read the tag's digest before the event was taken; its success records nothing twice.
    EventWriter(text_redis).succeeded("job000000007", digest=D2, changes=(job_change("job000000007", D2, D1),))
    history = read_history(text_redis, ref())
    assert [(c.digest, c.who, c.how, c.job_id) for c in history] == [
        (D2, "U0DEV1", "push", "job000000007"), (D1, "ci-bot", "registry event", None)]
    assert len(outbox(text_redis, "C0SEARCH")) == 2 and len(outbox(text_redis, "C0DEPLOYS")) == 2


def test_a_regops_push_whose_success_comes_first_is_still_announced_once(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event(digest=D1))
    consumer.step()
    expect(text_redis, "main", REPO, "latest", Expectation("job000000008", "U0DEV1", "push"))
    EventWriter(text_redis).succeeded("job000000008", digest=D2, changes=(job_change("job000000008", D2, D1),))
    add(text_redis, event(digest=D2))
    consumer.step()
    announced = outbox(text_redis, "C0SEARCH")[-1]
    assert (announced.who, announced.job_id, announced.digest, announced.previous) == (
        "U0DEV1", "job000000008", D2, D1)
    assert [c.job_id for c in read_history(text_redis, ref())] == ["job000000008", None]
    # The same digest pushed again later (CI re-pushing it): no change, nothing announced.
    add(text_redis, event(digest=D2))
    consumer.step()
    assert len(outbox(text_redis, "C0SEARCH")) == 2
    assert len(read_history(text_redis, ref())) == 2


def test_a_job_success_racing_the_decision_makes_it_decide_again(text_redis: redis.Redis) -> None:
    """The job's success lands between the consumer's reads and its EXEC: the EXEC fails, the retry sees it."""
    config = make_config()
    calls = []

    def subscriptions() -> list[Subscription]:
        if not calls:  # runs between the decision's reads and its MULTI
            EventWriter(text_redis).succeeded("job000000009", digest=D1,
                                              changes=(job_change("job000000009", D1, None),))
        calls.append(1)
        return []

    consumer = make_consumer(text_redis, config, router=Router(config, subscriptions))
    expect(text_redis, "main", REPO, "latest", Expectation("job000000009", "U0DEV1", "push"))
    add(text_redis, event(digest=D1))
    consumer.step()
    assert len(calls) == 2
    assert [c.job_id for c in read_history(text_redis, ref())] == ["job000000009"]
    (announced,) = outbox(text_redis, "C0SEARCH")
    assert (announced.job_id, announced.previous) == ("job000000009", None)


def test_a_regops_delete_is_announced_once_as_the_jobs(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, event(tag="latest", digest=D1), event(tag="v1", digest=D1))
    consumer.step()
    expect(text_redis, "main", REPO, D1, Expectation("job00000000a", "U0ADMIN", "delete", D1))
    # The job's success (both tags) is recorded before the registry's events come.
    EventWriter(text_redis).succeeded("job00000000a", changes=(
        job_change("job00000000a", None, D1, "latest", "delete"), job_change("job00000000a", None, D1, "v1", "delete")))
    add(text_redis, event("delete", tag=None, digest=D1), event("delete", tag="latest", digest=None),
        event("delete", tag="v1", digest=None))
    consumer.step()
    settled(consumer)
    (gone,) = [a for a in outbox(text_redis, "C0SEARCH") if a.kind == "delete"]
    assert (gone.tags, gone.who, gone.job_id, gone.by_slack) == (("latest", "v1"), "U0ADMIN", "job00000000a", True)
    for tag in ("latest", "v1"):
        assert len(read_history(text_redis, ref(tag))) == 2


def test_an_expectation_of_another_digest_is_not_this_events(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    expect(text_redis, "main", REPO, "latest", Expectation("job00000000b", "U0DEV1", "rollback", D3))
    add(text_redis, event(digest=D1))
    consumer.step()
    (announced,) = outbox(text_redis, "C0SEARCH")
    assert (announced.who, announced.job_id) == ("ci-bot", None)
    assert text_redis.get(expectation_key("main", REPO, "latest")) is not None


def test_each_channel_gets_one_message_across_routes_and_subscriptions(text_redis: redis.Redis) -> None:
    config = make_config(SEARCH, NotificationRoute(channel="C0SEARCH", images=("**",)),
                         NotificationRoute(channel="C0DEPLOYS", images=("centos7-*",)))
    for subscription in (Subscription(id="S1", channel="C0SEARCH", images=("centos7-*",)),
                         Subscription(id="S2", channel="C0TEAM", images=("**",)),
                         Subscription(id="S3", channel="C0TEAM", images=("centos7-elasticsearch",), tags=("latest",)),
                         Subscription(id="S4", channel="C0OTHER", images=("centos7-kibana",))):
        text_redis.hset(SUBSCRIPTIONS_KEY, subscription.id, subscription.to_json())
    consumer = make_consumer(text_redis, config)
    add(text_redis, event(digest=D1))
    consumer.step()
    assert {channel: len(outbox(text_redis, channel)) for channel in ("C0SEARCH", "C0DEPLOYS", "C0TEAM", "C0OTHER")} \
        == {"C0SEARCH": 1, "C0DEPLOYS": 1, "C0TEAM": 1, "C0OTHER": 0}


def test_an_event_read_by_a_dead_process_is_taken_once_by_another(text_redis: redis.Redis) -> None:
    make_consumer(text_redis)
    (entry,) = add(text_redis, event(digest=D1))
    # serve-dead reads the event and dies before its EXEC: the entry stays pending, nothing written.
    (_stream, [(read_id, fields)]), = text_redis.xreadgroup(REGISTRY_EVENTS_GROUP, "serve-dead",
                                                            {REGISTRY_EVENTS_STREAM: ">"})
    assert read_id == entry and pending(text_redis) == 1
    survivor = make_consumer(text_redis, name="serve-2", claim_idle_ms=100)
    time.sleep(0.2)
    assert survivor.step() == 1
    assert len(outbox(text_redis, "C0SEARCH")) == 1 and pending(text_redis) == 0
    # Had serve-dead only been slow, its late take of the same entry adds nothing.
    late = make_consumer(text_redis, name="serve-dead")
    late.take(read_id, fields)
    assert len(outbox(text_redis, "C0SEARCH")) == 1
    assert len(read_history(text_redis, ref())) == 1


def test_malformed_and_unknown_entries_are_acknowledged_and_logged_once(text_redis: redis.Redis,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    consumer = make_consumer(text_redis)
    text_redis.xadd(REGISTRY_EVENTS_STREAM, {"action": "push", "at": "not a time"})
    text_redis.xadd(REGISTRY_EVENTS_STREAM, {**event().to_fields(), "registry": "gone"})
    add(text_redis, event(digest=D1))
    with caplog.at_level(logging.WARNING, logger="bot.slack.registry_consumer"):
        assert consumer.step() == 3
        consumer.step()
    assert len([r for r in caplog.records if "no registry event" in r.getMessage()]) == 1
    assert len([r for r in caplog.records if "no longer has" in r.getMessage()]) == 1
    assert pending(text_redis) == 0
    assert len(outbox(text_redis, "C0SEARCH")) == 1


def test_drain_takes_what_waits_and_returns(text_redis: redis.Redis) -> None:
    consumer = make_consumer(text_redis)
    add(text_redis, *(event(tag=f"v{n}", digest=D1) for n in range(5)))
    assert consumer.drain(timeout=5.0) == 5
    assert consumer.drain(timeout=5.0) == 0
    assert len(outbox(text_redis, "C0SEARCH")) == 5


def test_history_written_before_the_event_by_another_tool_is_the_previous(text_redis: redis.Redis) -> None:
    record_changes(text_redis, [job_change("job00000000c", D3, None)])
    consumer = make_consumer(text_redis)
    add(text_redis, event(digest=D1))
    consumer.step()
    (moved,) = outbox(text_redis, "C0SEARCH")
    assert moved.previous == D3


def _recorded(name: str) -> list[RegistryEvent]:
    fixture = json.loads((ENVELOPES / f"{name}.json").read_text())
    return parse_envelope(json.dumps(fixture["body"]).encode(), fixture["content_type"], "main", 0.0)


def test_real_distribution_envelopes_through_the_intake_announce_push_and_delete_once(
        text_redis: redis.Redis) -> None:
    """Envelopes recorded from Distribution 2.8: a tag push, its manifest's delete, then the tag's delete."""
    config = make_config(NotificationRoute(channel="C0ALL", images=("**",), events=frozenset({"push", "delete"})))
    consumer = make_consumer(text_redis, config)
    intake = EventIntake(text_redis)
    (pushed,) = _recorded("push_api")
    (manifest_gone,) = _recorded("delete_manifest")
    (tag_gone,) = _recorded("delete_tag")
    # The recorded delete is of the pushed manifest under another tag (1.1): push that tag too.
    retagged = replace(pushed, id="retag-1.1", tag=tag_gone.tag, digest=manifest_gone.digest)
    intake.store("main", [pushed, retagged], now=10.0)
    consumer.step()
    intake.store("main", [manifest_gone], now=11.0)
    intake.store("main", [tag_gone], now=11.1)
    intake.store("main", [tag_gone], now=12.0)  # the registry retrying an envelope
    consumer.step()
    settled(consumer)
    announced = outbox(text_redis, "C0ALL")
    assert [a.kind for a in announced] == ["push", "push", "delete"]
    assert announced[0].who == "user001@namespace.example.com" and announced[0].previous is None
    gone = announced[2]
    assert gone.digest == manifest_gone.digest and tag_gone.tag in gone.tags
    assert pending(text_redis) == 0


def test_an_event_that_fails_to_be_taken_does_not_stall_the_ones_behind_it(
        text_redis: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config()
    broken = iter([True])

    def subscriptions() -> list[Subscription]:
        if next(broken, False):
            raise ValueError("a bug")
        return []

    consumer = make_consumer(text_redis, config, router=Router(config, subscriptions))
    add(text_redis, event(tag="first", digest=D1), event(tag="second", digest=D2))
    with caplog.at_level(logging.ERROR, logger="bot.slack.registry_consumer"):
        assert consumer.step() == 2
    assert [a.tags for a in outbox(text_redis, "C0SEARCH")] == [("second",)]
    assert pending(text_redis) == 0
    assert any("could not be taken" in r.getMessage() for r in caplog.records)
