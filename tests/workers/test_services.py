"""The test harness itself: services start on their own ports, stop cleanly and explain failures."""

from __future__ import annotations

import pytest

from tests.support.services import RedisServer, Registry


def test_two_redis_servers_do_not_collide() -> None:
    with RedisServer() as first, RedisServer() as second:
        assert first.port != second.port and first.directory != second.directory
        first.client().set("k", "first")
        assert second.client().get("k") is None
        directory = first.directory
    assert not first.running and directory is not None and not directory.exists()


def test_a_service_that_cannot_start_says_which_and_why() -> None:
    with RedisServer() as taken, pytest.raises(RuntimeError) as caught:
        RedisServer(port=taken.port).start()
    message = str(caught.value)
    assert message.startswith("redis failed to start")
    assert "last lines of its log" in message
    assert "Address already in use" in message


def test_registry_requires_the_password(registry: Registry) -> None:
    with pytest.raises(Exception) as caught:
        Registry(username=registry.username, password="x", port=registry.port).manifest_digest("a/b", "1")
    assert "401" in str(caught.value)
    assert registry.manifest_digest("never/pushed", "1.0") is None


def test_a_registry_on_a_taken_port_is_not_mistaken_for_ours(registry: Registry) -> None:
    with pytest.raises(RuntimeError) as caught:
        Registry(port=registry.port).start()
    assert str(caught.value).startswith("registry failed to start")
    assert "address already in use" in str(caught.value)
