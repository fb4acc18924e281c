"""Registry events into Redis (real Redis): each id once per registry, all of an envelope at once."""

from __future__ import annotations

import threading

import pytest
import redis

from bot.core.event_intake import EventIntake, StoredCount
from bot.core.registry_events import RegistryEvent
from workers.kernel.keys import (
    REGISTRY_EVENT_SEEN_TTL_SECONDS,
    REGISTRY_EVENTS_GROUP,
    REGISTRY_EVENTS_LAST_KEY,
    REGISTRY_EVENTS_STREAM,
    registry_event_seen_key,
)

NOW = 1_800_000_000.25
DIGEST = "sha256:" + "cd" * 32


def push(event_id: str, tag: str = "1.0", registry: str = "main") -> RegistryEvent:
    return RegistryEvent(registry=registry, id=event_id, action="push", repository="com.example.namespace/app",
                         at=NOW - 1, tag=tag, digest=DIGEST,
                         media_type="application/vnd.oci.image.manifest.v1+json", actor="ci", address="10.0.0.1:4")


def stream(client: redis.Redis) -> list[RegistryEvent]:
    return [RegistryEvent.from_fields(fields) for _, fields in client.xrange(REGISTRY_EVENTS_STREAM)]


def test_new_events_go_on_the_stream_with_their_fields_and_the_envelope_time_is_noted(
        text_redis: redis.Redis) -> None:
    events = [push("e1", "1.0"), push("e2", "1.1"),
              RegistryEvent(registry="main", id="e3", action="delete", repository="com.example.namespace/app",
                            at=NOW, digest=DIGEST)]
    assert EventIntake(text_redis).store("main", events, NOW) == StoredCount(taken=3, duplicate=0)
    assert stream(text_redis) == events
    assert float(text_redis.hget(REGISTRY_EVENTS_LAST_KEY, "main") or 0) == NOW
    entries = [entry_id for entry_id, _ in text_redis.xrange(REGISTRY_EVENTS_STREAM)]
    for event, entry_id in zip(events, entries, strict=True):
        key = registry_event_seen_key("main", event.id)
        assert text_redis.get(key) == entry_id
        assert REGISTRY_EVENT_SEEN_TTL_SECONDS - 5 < text_redis.ttl(key) <= REGISTRY_EVENT_SEEN_TTL_SECONDS


def test_an_envelope_delivered_again_adds_nothing_and_a_mixed_one_adds_only_the_new(text_redis: redis.Redis) -> None:
    intake = EventIntake(text_redis)
    intake.store("main", [push("e1"), push("e2")], NOW)
    assert intake.store("main", [push("e1"), push("e2")], NOW + 5) == StoredCount(taken=0, duplicate=2)
    assert intake.store("main", [push("e2"), push("e3", "2.0")], NOW + 6) == StoredCount(taken=1, duplicate=1)
    assert [e.id for e in stream(text_redis)] == ["e1", "e2", "e3"]
    assert float(text_redis.hget(REGISTRY_EVENTS_LAST_KEY, "main") or 0) == NOW + 6


def test_the_same_id_twice_in_one_envelope_is_taken_once(text_redis: redis.Redis) -> None:
    assert EventIntake(text_redis).store("main", [push("e1"), push("e1")], NOW) == StoredCount(1, 1)
    assert len(stream(text_redis)) == 1


def test_ids_are_per_registry(text_redis: redis.Redis) -> None:
    intake = EventIntake(text_redis)
    intake.store("main", [push("e1")], NOW)
    assert intake.store("prod", [push("e1", registry="prod")], NOW + 1) == StoredCount(1, 0)
    assert [(e.registry, e.id) for e in stream(text_redis)] == [("main", "e1"), ("prod", "e1")]
    assert text_redis.hgetall(REGISTRY_EVENTS_LAST_KEY) == {"main": repr(NOW), "prod": repr(NOW + 1)}


def test_an_envelope_with_nothing_relevant_still_counts_as_heard_from(text_redis: redis.Redis) -> None:
    assert EventIntake(text_redis).store("main", [], NOW) == StoredCount(0, 0)
    assert text_redis.hget(REGISTRY_EVENTS_LAST_KEY, "main") == repr(NOW)
    assert not text_redis.exists(REGISTRY_EVENTS_STREAM)


def test_one_envelope_delivered_many_times_at_once_is_stored_once(text_redis: redis.Redis) -> None:
    events = [push(f"e{n}", f"t{n}") for n in range(20)]
    results: list[StoredCount] = []
    start = threading.Barrier(8)

    def deliver() -> None:
        client = redis.Redis(connection_pool=redis.ConnectionPool(**text_redis.connection_pool.connection_kwargs))
        intake = EventIntake(client)
        start.wait()
        results.append(intake.store("main", events, NOW))
        client.close()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # Each delivery ran whole: one took all 20, every other found all 20 already there.
    assert sorted((r.taken, r.duplicate) for r in results) == [(0, 20)] * 7 + [(20, 0)]
    assert [e.id for e in stream(text_redis)] == [e.id for e in events]


def test_when_redis_refuses_the_write_nothing_is_marked_seen_and_the_retry_takes_it(text_redis: redis.Redis) -> None:
    text_redis.set(REGISTRY_EVENTS_STREAM, "not a stream")  # every XADD now fails
    intake = EventIntake(text_redis)
    with pytest.raises(redis.ResponseError):
        intake.store("main", [push("e1")], NOW)
    assert not text_redis.exists(registry_event_seen_key("main", "e1"))
    text_redis.delete(REGISTRY_EVENTS_STREAM)
    assert intake.store("main", [push("e1")], NOW) == StoredCount(1, 0)


def test_entries_written_before_the_consumer_group_exists_are_read_by_it(text_redis: redis.Redis) -> None:
    EventIntake(text_redis).store("main", [push("e1"), push("e2")], NOW)
    text_redis.xgroup_create(REGISTRY_EVENTS_STREAM, REGISTRY_EVENTS_GROUP, id="0", mkstream=True)
    read = text_redis.xreadgroup(REGISTRY_EVENTS_GROUP, "c1", {REGISTRY_EVENTS_STREAM: ">"}, count=10)
    assert [RegistryEvent.from_fields(fields).id for _, entries in read for _, fields in entries] == ["e1", "e2"]


def test_redis_unreachable_raises_a_redis_error() -> None:
    gone = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, decode_responses=True)
    with pytest.raises(redis.RedisError):
        EventIntake(gone).store("main", [push("e1")], NOW)
