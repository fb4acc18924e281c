"""Registry notification envelopes: what Distribution really sends (recorded) and each rule of what is taken."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bot.core.envelopes import EnvelopeError, UnsupportedMediaType, parse_envelope, read_envelope
from bot.core.registry_events import RegistryEvent

RECORDED = Path(__file__).parents[1] / "support" / "registry_envelopes"
EVENTS_TYPE = "application/vnd.docker.distribution.events.v1+json"
NOW = 1_700_000_000.0
DIGEST = "sha256:" + "ab" * 32
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def recorded(name: str) -> tuple[bytes, str, dict[str, Any]]:
    """(body as sent, content type, the event) of a recorded envelope."""
    fixture = json.loads((RECORDED / f"{name}.json").read_text())
    return json.dumps(fixture["body"]).encode(), fixture["content_type"], fixture["body"]["events"][0]


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def event(**changes: Any) -> dict[str, Any]:
    """A tag push as Distribution writes one; ``changes`` set fields (``target_x`` sets target.x; None removes)."""
    value: dict[str, Any] = {
        "id": "0b4f6a8e-7c1d-4e2f-9a3b-5c6d7e8f9a0b", "timestamp": "2027-01-15T08:00:00.123456789Z",
        "action": "push",
        "target": {"mediaType": DOCKER_MANIFEST, "size": 733, "digest": DIGEST, "length": 733,
                   "repository": "com.example.namespace/centos7-nginx", "tag": "1.0"},
        "request": {"id": "r", "addr": "10.0.0.7:51234", "host": "registry", "method": "PUT", "useragent": "docker"},
        "actor": {"name": "ci@namespace.example.com"}, "source": {"addr": "registry:5000"},
    }
    for key, new in changes.items():
        where, name = (value["target"], key[len("target_"):]) if key.startswith("target_") else (value, key)
        if new is None:
            where.pop(name, None)
        else:
            where[name] = new
    return value


def one(data: bytes, content_type: str = EVENTS_TYPE) -> RegistryEvent | None:
    events = parse_envelope(data, content_type, "main", NOW)
    assert len(events) <= 1
    return events[0] if events else None


def test_a_recorded_push_under_a_tag_is_taken_with_every_field() -> None:
    data, content_type, sent = recorded("push_api")
    assert content_type == EVENTS_TYPE
    taken = one(data, content_type)
    assert taken == RegistryEvent(
        registry="main", id=sent["id"], action="push", repository="com.example.namespace/recorded",
        at=taken.at if taken else 0, tag="1.0", digest=sent["target"]["digest"], media_type=DOCKER_MANIFEST,
        actor="user001@namespace.example.com", address=sent["request"]["addr"])
    assert taken is not None and taken.at != NOW


def test_a_recorded_docker_cli_push_and_index_push_are_taken() -> None:
    for name, media_type in (("push_docker", DOCKER_MANIFEST), ("push_index", "application/vnd.oci.image.index.v1+json")):
        data, content_type, sent = recorded(name)
        taken = one(data, content_type)
        assert taken is not None and (taken.tag, taken.digest, taken.media_type) == (
            sent["target"]["tag"], sent["target"]["digest"], media_type)


def test_recorded_deletes_a_manifest_by_digest_and_a_tag_without_one() -> None:
    data, content_type, sent = recorded("delete_manifest")
    manifest = one(data, content_type)
    assert manifest is not None and (manifest.action, manifest.tag, manifest.digest, manifest.media_type) == (
        "delete", None, sent["target"]["digest"], None)
    data, content_type, sent = recorded("delete_tag")
    tag = one(data, content_type)
    assert tag is not None and (tag.action, tag.tag, tag.digest) == ("delete", sent["target"]["tag"], None)
    assert tag.repository == manifest.repository and tag.actor == "user001@namespace.example.com"


@pytest.mark.parametrize("name", ["pull_manifest", "push_blob", "push_digest_only"])
def test_recorded_pulls_blob_pushes_and_digest_only_pushes_are_ignored(name: str) -> None:
    data, content_type, _ = recorded(name)
    assert read_envelope(data, content_type, "main", NOW).ignored == 1
    assert parse_envelope(data, content_type, "main", NOW) == []


@pytest.mark.parametrize("changes", [
    {"action": "pull"}, {"action": "mount"}, {"action": "something-new"},
    {"target_mediaType": "application/octet-stream", "target_tag": None},
    {"target_mediaType": "application/vnd.docker.container.image.v1+json"},
    {"target_mediaType": None},
    {"target_tag": None}, {"target_tag": ""},
])
def test_what_is_not_a_tag_change_is_ignored(changes: dict[str, Any]) -> None:
    assert one(body(event(**changes))) is None


@pytest.mark.parametrize("media_type", [
    DOCKER_MANIFEST, "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"])
def test_a_push_of_each_manifest_media_type_under_a_tag_is_taken(media_type: str) -> None:
    taken = one(body(event(target_mediaType=media_type)))
    assert taken is not None and taken.media_type == media_type


@pytest.mark.parametrize("content_type", [
    EVENTS_TYPE, "application/json", "application/json; charset=utf-8", "Application/JSON",
    f"{EVENTS_TYPE};charset=UTF-8"])
def test_both_content_types_are_accepted_with_parameters(content_type: str) -> None:
    assert one(body(event()), content_type) is not None


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonx", "multipart/form-data; boundary=x"])
def test_another_content_type_is_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        parse_envelope(body(event()), content_type, "main", NOW)


@pytest.mark.parametrize("data,reason", [
    (b"", "the body is not JSON"),
    (b"{not json", "the body is not JSON"),
    (b"\xff\xfe{}", "the body is not JSON"),
    (b"[" * 100_000, "the body is not JSON"),
    (b'[{"events": []}]', "the body must be a JSON object with an `events` list"),
    (b'"events"', "the body must be a JSON object with an `events` list"),
    (b"{}", "the body has no `events` list"),
    (b'{"events": {"id": "x"}}', "the body has no `events` list"),
    (b'{"events": null}', "the body has no `events` list"),
    (b'{"events": ["push"]}', "events[0] is not an object"),
])
def test_a_body_that_is_no_envelope_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_envelope(data, EVENTS_TYPE, "main", NOW)
    assert info.value.reason == reason and not isinstance(info.value, UnsupportedMediaType)


@pytest.mark.parametrize("changes,reason", [
    ({"id": None}, "events[1].id is missing or not a string"),
    ({"id": ""}, "events[1].id is missing or not a string"),
    ({"id": 42}, "events[1].id is missing or not a string"),
    ({"id": "x" * 129}, "events[1].id is longer than 128 characters"),
    ({"id": "two words"}, "events[1].id has characters an event id does not have"),
    ({"id": "../../etc"}, "events[1].id has characters an event id does not have"),
    ({"action": None}, "events[1].action is missing or not a string"),
    ({"action": ["push"]}, "events[1].action is missing or not a string"),
    ({"action": "p" * 33}, "events[1].action is longer than 32 characters"),
    ({"target": None}, "events[1].target is missing or not an object"),
    ({"target": "x"}, "events[1].target is missing or not an object"),
    ({"target_repository": None}, "events[1].target.repository is missing or not a string"),
    ({"target_repository": "Upper/Case"}, "events[1].target.repository is not a repository path"),
    ({"target_repository": "a//b"}, "events[1].target.repository is not a repository path"),
    ({"target_repository": "a b"}, "events[1].target.repository is not a repository path"),
    ({"target_repository": "a/" * 130}, "events[1].target.repository is longer than 255 characters"),
    ({"target_tag": "bad tag"}, "events[1].target.tag is not a valid tag"),
    ({"target_tag": "t" * 129}, "events[1].target.tag is not a valid tag"),
    ({"target_tag": 1}, "events[1].target.tag is not a string"),
    ({"target_digest": "sha256:zz"}, "events[1].target.digest is not a valid digest"),
    ({"target_digest": None}, "events[1]: a manifest push without a target.digest"),
    ({"action": "delete", "target_digest": None, "target_tag": None},
     "events[1]: a delete naming neither a target.digest nor a target.tag"),
])
def test_an_event_without_a_sane_id_action_or_target_refuses_the_whole_envelope(
        changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_envelope(body(event(), event(**changes)), EVENTS_TYPE, "main", NOW)
    assert info.value.reason == reason


def test_the_reason_never_echoes_the_input() -> None:
    secret = "Bearer-abcdef-0123456789-leaked"
    for changes in ({"id": secret + " x"}, {"target_repository": secret}, {"target_tag": secret + "!"},
                    {"target_digest": secret}):
        with pytest.raises(EnvelopeError) as info:
            parse_envelope(body(event(**changes)), EVENTS_TYPE, "main", NOW)
        assert secret not in info.value.reason


@pytest.mark.parametrize("stamp,expected", [
    ("2027-01-15T08:00:00Z", 1_800_000_000.0),
    ("2027-01-15T08:00:00.123456789Z", 1_800_000_000.123456789),
    ("2027-01-15T08:00:00.5z", 1_800_000_000.5),
    ("2027-01-15t09:30:00.25+01:30", 1_800_000_000.25),
    ("2027-01-15T03:00:00-05:00", 1_800_000_000.0),
    ("2027-01-15 08:00:00Z", 1_800_000_000.0),
])
def test_at_is_the_events_rfc3339_timestamp(stamp: str, expected: float) -> None:
    taken = one(body(event(timestamp=stamp)))
    assert taken is not None and taken.at == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("stamp", [None, "", "2027-01-15", "2027-01-15T08:00:00", "yesterday", 1_800_000_000,
                                   "2027-02-30T08:00:00Z", "2027-01-15T08:00:00+25:00", "2027-01-15T08:00:00.1234567890Z"])
def test_without_a_readable_timestamp_at_is_now(stamp: object) -> None:
    taken = one(body(event(timestamp=stamp)))
    assert taken is not None and taken.at == NOW


def test_actor_and_address_are_optional_and_kept_only_when_sane() -> None:
    plain = event()
    del plain["actor"], plain["request"]
    taken = one(body(plain))
    assert taken is not None and (taken.actor, taken.address) == (None, None)
    odd = event(actor={"name": "x" * 300}, request={"addr": "line\nbreak"})
    taken = one(body(odd))
    assert taken is not None and (taken.actor, taken.address) == (None, None)
    taken = one(body(event(actor="ci", request=["10.0.0.1"])))
    assert taken is not None and (taken.actor, taken.address) == (None, None)


def test_a_delete_with_both_tag_and_digest_is_a_tag_delete_that_keeps_the_digest() -> None:
    taken = one(body(event(action="delete", target_mediaType=None)))
    assert taken is not None and (taken.tag, taken.digest, taken.media_type) == ("1.0", DIGEST, None)


def test_several_events_keep_their_order_and_the_ignored_are_counted() -> None:
    events = [event(id="a1", target_tag="1"), event(id="b2", action="pull"), event(id="c3", target_tag="2"),
              event(id="d4", action="delete", target_tag="3", target_digest="")]
    envelope = read_envelope(body(*events), EVENTS_TYPE, "main", NOW)
    assert [(e.id, e.action, e.tag, e.registry) for e in envelope.events] == [
        ("a1", "push", "1", "main"), ("c3", "push", "2", "main"), ("d4", "delete", "3", "main")]
    assert envelope.ignored == 1
    assert read_envelope(body(), EVENTS_TYPE, "main", NOW) == read_envelope(b'{"events": []}', "application/json",
                                                                              "main", NOW)


def test_the_events_stream_fields_round_trip() -> None:
    taken = one(body(event()))
    assert taken is not None
    fields = taken.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert RegistryEvent.from_fields(fields) == taken
    deleted = one(body(event(action="delete", target_tag=None)))
    assert deleted is not None and "tag" not in deleted.to_fields()
    assert RegistryEvent.from_fields(deleted.to_fields()) == deleted


def test_parsing_does_not_change_what_it_was_given() -> None:
    original = event()
    kept = copy.deepcopy(original)
    parse_envelope(body(original), EVENTS_TYPE, "main", NOW)
    assert original == kept
