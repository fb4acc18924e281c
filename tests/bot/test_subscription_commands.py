"""subscribe, unsubscribe and subscriptions on the service path, on real Redis: what is stored, and what never is."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
import redis

from bot.console.shell import Shell
from bot.core.assembly import build_core
from bot.core.audit import AuditLog
from bot.core.metrics import Metrics
from bot.core.replies import ReplyKind, Request
from bot.core.service import Service
from bot.core.subscriptions import MAX_PER_CHANNEL, SubscriptionStore
from tests.support.core import bytes_redis, make_service
from tests.support.texts import slack
from workers.kernel.config import Config, parse_config
from workers.kernel.config.model import NotificationRoute
from workers.kernel.keys import AUDIT_STREAM, METRICS_COMMANDS_KEY, SUBSCRIPTIONS_KEY

SERVER = "dockerhub.example.com:5100"
CONFIG = {
    "registries": {"main": {"server": SERVER, "services_hostname": "namespace.example.com",
                            "username": "user001@namespace.example.com", "password_env": "REGISTRY_PASSWORD"},
                   "other": {"server": "other.example.com", "services_hostname": "svc.example.org",
                             "username": "u", "password_file": "/run/secrets/other"}},
    "default_registry": "main",
    "hosts": ["build-1"],
    "notify_channel": "C0DEPLOYS",
    "access": {"roles": {"admin": {"actions": ["*"]},
                         "deployer": {"actions": ["push", "pull", "tag", "login"], "images": ["centos7-*"]},
                         "subscriber": {"actions": ["subscribe"], "registries": ["other"]}},
               "grants": [{"role": "admin", "users": ["U0ADMIN"]}, {"role": "deployer", "users": ["U0DEV1"]},
                          {"role": "subscriber", "users": ["U0SUB"]},
                          {"role": "admin", "users": ["U0OPSADMIN"], "channels": ["C0OPS"]}]},
}


def _config(**changes: object) -> Config:
    """The config, ``main`` taking registry notifications (its events token), with ``changes``."""
    config = parse_config(CONFIG)
    main = dataclasses.replace(config.registries["main"], events_token_env="REGISTRY_EVENTS_TOKEN")
    return dataclasses.replace(config, registries={**config.registries, "main": main}, **changes)  # type: ignore[arg-type]


def _service(connection: redis.Redis, config: Config) -> Service:
    return build_core(config, connection, bytes_redis(connection), metrics=Metrics(connection)).service


@pytest.fixture
def service(text_redis: redis.Redis) -> Service:
    return _service(text_redis, _config())


def _run(service: Service, text: str, user: str = "U0ADMIN", channel: str | None = "C0OPS") -> tuple[ReplyKind, str]:
    reply = service.handle(Request(user_id=user, text=text, channel_id=channel))
    return reply.kind, slack(reply.text)


def _stored(connection: redis.Redis) -> dict[str, dict]:
    return {key: json.loads(value) for key, value in connection.hgetall(SUBSCRIPTIONS_KEY).items()}


def _audit(connection: redis.Redis) -> list[dict[str, str]]:
    return [fields for _id, fields in connection.xrange(AUDIT_STREAM)]


def test_subscribe_stores_the_channel_s_subscription_and_audits_it(service: Service, text_redis: redis.Redis) -> None:
    kind, text = _run(service, "subscribe centos7-* --tags latest,v* --events push,delete")
    assert kind is ReplyKind.ANSWER
    assert "Subscribed <#C0OPS> as `S1`" in text and "pushes and deletes of `centos7-*`" in text
    assert "tags `latest`, `v*`" in text and "`/registry unsubscribe S1`" in text
    # Every registry: `other` sends no notifications, and the answer says so.
    assert "`other` has no events token" in text
    stored = _stored(text_redis)
    assert stored == {"S1": {"id": "S1", "channel": "C0OPS", "images": ["centos7-*"], "tags": ["latest", "v*"],
                             "events": ["delete", "push"], "registry": None, "who": "U0ADMIN",
                             "at": stored["S1"]["at"]}}
    entry = _audit(text_redis)[-1]
    assert entry["decision"] == "allowed" and entry["user"] == "U0ADMIN" and entry["channel"] == "C0OPS"
    assert entry["command"].startswith("subscribe centos7-*") and entry["outcome"].startswith("subscribed S1:")
    assert entry["rule"] == "grants[0] role admin"
    assert text_redis.hget(METRICS_COMMANDS_KEY, "subscribe|allowed") == "1"


def test_a_full_repository_path_picks_its_registry_and_keeps_the_image_glob(
        service: Service, text_redis: redis.Redis) -> None:
    kind, text = _run(service, f"subscribe {SERVER}/com.example.namespace/centos7-elasticsearch")
    assert kind is ReplyKind.ANSWER, text
    assert "registry `main`" in text and "no events token" not in text
    kind, _ = _run(service, "subscribe org.example.svc/app-*")  # `other`'s namespace: that registry
    assert kind is ReplyKind.ANSWER
    stored = _stored(text_redis)
    assert (stored["S1"]["images"], stored["S1"]["registry"]) == (["centos7-elasticsearch"], "main")
    assert (stored["S2"]["images"], stored["S2"]["registry"]) == (["app-*"], "other")
    assert stored["S1"]["tags"] == ["*"] and stored["S1"]["events"] == ["push"]


def test_listing_shows_the_subscriptions_and_the_static_routes_here(text_redis: redis.Redis) -> None:
    service = _service(text_redis, _config(notify_channel="C0OPS", routes=(
        NotificationRoute(channel="C0ELSEWHERE", images=("web",)),
        NotificationRoute(channel="C0OPS", images=("centos7-kibana",), tags=("v*",), events=frozenset({"delete"})),
    )))
    _run(service, "subscribe centos7-* --registry main")
    _run(service, "subscribe web/** --registry main", channel="C0OTHER")
    kind, text = _run(service, "subscriptions", user="U0DEV1")  # any role may list
    assert kind is ReplyKind.ANSWER
    assert "*Announced in <#C0OPS>*" in text
    assert "`S1` — pushes of `centos7-*`, every tag, registry `main` — by <@U0ADMIN>" in text
    assert "UTC" in text or "Z" in text  # when it was made
    assert "`web/**`" not in text  # another channel's
    assert "`notifications.routes[1]`: deletes of `centos7-kibana`, tags `v*`, every registry" in text
    assert "routes[0]" not in text
    assert "`notify_channel`: every push" in text
    assert _audit(text_redis)[-1]["decision"] == "answered"


def test_listing_an_empty_channel_says_how_to_subscribe(service: Service) -> None:
    kind, text = _run(service, "subscriptions", channel="C0QUIET")
    assert kind is ReplyKind.ANSWER
    assert "Nothing is announced in <#C0QUIET>" in text and "`/registry subscribe IMAGE_GLOB`" in text


def test_listing_needs_some_role_here(service: Service, text_redis: redis.Redis) -> None:
    kind, text = _run(service, "subscriptions", user="U0NOBODY")
    assert kind is ReplyKind.DENIED and "no grant gives you any role" in text
    kind, text = _run(service, "subscriptions", user="U0OPSADMIN", channel="C0ELSEWHERE")
    assert kind is ReplyKind.DENIED and "<#C0OPS>" in text


def test_unsubscribe_by_id_and_by_glob_removes_and_audits(service: Service, text_redis: redis.Redis) -> None:
    _run(service, "subscribe centos7-*")
    _run(service, "subscribe centos7-* --tags latest")
    _run(service, "subscribe web")
    kind, text = _run(service, "unsubscribe S3")
    assert kind is ReplyKind.ANSWER and "Removed `S3` from <#C0OPS>: pushes of `web`" in text
    assert set(_stored(text_redis)) == {"S1", "S2"}
    entry = _audit(text_redis)[-1]
    assert (entry["decision"], entry["command"]) == ("allowed", "unsubscribe S3")
    assert entry["outcome"].startswith("unsubscribed S3:")

    kind, text = _run(service, f"unsubscribe {SERVER}/com.example.namespace/centos7-*")
    assert kind is ReplyKind.ANSWER and "Removed 2 subscriptions" in text and "`S1`" in text and "`S2`" in text
    assert _stored(text_redis) == {}
    assert text_redis.hget(METRICS_COMMANDS_KEY, "unsubscribe|allowed") == "2"

    kind, text = _run(service, "unsubscribe S3")
    assert kind is ReplyKind.ANSWER and "There is no subscription `S3`" in text
    kind, text = _run(service, "unsubscribe s3")
    assert "capital S, like `S3`" in text
    kind, text = _run(service, "unsubscribe web")
    assert "<#C0OPS> has no subscription with the image glob `web`" in text


def test_another_channel_s_subscription_is_not_removed_here(service: Service, text_redis: redis.Redis) -> None:
    _run(service, "subscribe centos7-*", channel="C0OTHER")
    kind, text = _run(service, "unsubscribe S1", channel="C0OPS")
    assert kind is ReplyKind.DENIED
    assert "`S1` is a subscription of <#C0OTHER>, not of <#C0OPS>" in text and "Nothing changed" in text
    assert set(_stored(text_redis)) == {"S1"}
    assert _audit(text_redis)[-1]["decision"] == "denied"
    # Its image glob names nothing here either.
    kind, text = _run(service, "unsubscribe centos7-*", channel="C0OPS")
    assert "has no subscription" in text and set(_stored(text_redis)) == {"S1"}


@pytest.mark.parametrize(
    ("user", "text", "channel", "fragments"),
    [
        ("U0DEV1", "subscribe centos7-*", "C0OPS", ["you may not run `subscribe`", "roles: deployer"]),
        ("U0NOBODY", "subscribe centos7-*", "C0OPS", ["no grant gives you any role"]),
        ("U0OPSADMIN", "subscribe centos7-*", "C0ELSEWHERE", ["valid in <#C0OPS>"]),
        ("U0SUB", "subscribe centos7-* --registry main", "C0OPS", ["registry `main`"]),
        # Every registry is `main` too.
        ("U0SUB", "subscribe centos7-*", "C0OPS",
         ["registry `main`", "; without `--registry NAME`, a subscription covers every registry"]),
        # S1 is an admin's subscription of every registry: removing it needs what making it needed.
        ("U0SUB", "unsubscribe S1", "C0OPS", ["`S1` (pushes of `keep-me`, every tag, every registry): you may not",
                                              "registry `main`", "Nothing was removed"]),
        ("U0SUB", "unsubscribe keep-me", "C0OPS", ["registry `main`", "Nothing was removed"]),
        ("U0DEV1", "unsubscribe S1", "C0OPS", ["you may not run `unsubscribe`"]),
    ],
)
def test_subscribing_needs_the_subscribe_action_and_stores_nothing_otherwise(
        service: Service, text_redis: redis.Redis, user: str, text: str, channel: str, fragments: list[str]) -> None:
    _run(service, "subscribe keep-me")  # S1, an admin's
    kind, answer = _run(service, text, user=user, channel=channel)
    assert kind is ReplyKind.DENIED, answer
    for fragment in fragments:
        assert fragment in answer
    assert set(_stored(text_redis)) == {"S1"}
    assert _audit(text_redis)[-1]["decision"] == "denied"


def test_a_role_with_the_subscribe_action_may_subscribe_within_its_registries(service: Service,
                                                                               text_redis: redis.Redis) -> None:
    kind, text = _run(service, "subscribe app-* --registry other", user="U0SUB")
    assert kind is ReplyKind.ANSWER and "`S1`" in text
    assert _stored(text_redis)["S1"]["registry"] == "other"
    kind, text = _run(service, "subscribe app-* --registry main")  # the same glob, an admin's, in main
    kind, text = _run(service, "unsubscribe app-*", user="U0SUB")
    assert kind is ReplyKind.DENIED and "Nothing was removed" in text
    assert set(_stored(text_redis)) == {"S1", "S2"}
    kind, text = _run(service, "unsubscribe S1", user="U0SUB")
    assert kind is ReplyKind.ANSWER and "Removed `S1`" in text
    assert set(_stored(text_redis)) == {"S2"}


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("subscribe", ["missing IMAGE_GLOB"]),
        ("subscribe Centos7-*", ["lower-case", "`centos7-*`"]),
        ("subscribe centos7-[", ["never closed"]),
        ("subscribe centos7-[z-a]", ["`[z-a]` is not a valid class"]),
        ("subscribe centos7:latest", ["no tag or digest", "`--tags latest`"]),
        ("subscribe registry.invalid:5000/app", ["no configured registry server", f"`{SERVER}`"]),
        ("subscribe app --registry mian", ["unknown registry `mian`", "Did you mean `main`?"]),
        (f"subscribe {SERVER}/app --registry other", ["is in registry `main`", "`--registry` names `other`"]),
        ("subscribe app --events pull", ["`push`, `delete` only", "`pull`"]),
        ("subscribe app --tags v1/x", ["`/` can never be in a tag"]),
        ("subscribe app --tags [z-a]", ["not a valid class"]),
        ("subscribe app,web", ["one IMAGE_GLOB a subscription"]),
        ("subscribe a//b", ["empty path component"]),
        (f"subscribe {SERVER}/com.example.namespace/", ["names no image"]),
        ("subscribe app --host build-1", ["is not an option of `subscribe`"]),
    ],
)
def test_bad_input_is_answered_with_what_would_be_right_and_stores_nothing(
        service: Service, text_redis: redis.Redis, text: str, fragments: list[str]) -> None:
    kind, answer = _run(service, text)
    assert kind is ReplyKind.USAGE_ERROR, answer
    for fragment in fragments:
        assert fragment in answer, answer
    assert _stored(text_redis) == {}
    assert not text_redis.exists("regops:subscriptions:next")
    assert _audit(text_redis)[-1]["decision"] == "invalid"


def test_without_a_channel_nothing_is_subscribed(service: Service, text_redis: redis.Redis) -> None:
    for text in ("subscribe app", "unsubscribe S1", "subscriptions", "can-i subscribe"):
        kind, answer = _run(service, text, channel=None)
        assert kind is ReplyKind.USAGE_ERROR and "came from no channel" in answer
    assert _stored(text_redis) == {}


def test_the_same_subscription_twice_is_kept_once(service: Service, text_redis: redis.Redis) -> None:
    _run(service, "subscribe app --events push,delete")
    kind, text = _run(service, "subscribe app --events delete,push")
    assert kind is ReplyKind.ANSWER and "already has this subscription: `S1`" in text and "Nothing changed" in text
    assert set(_stored(text_redis)) == {"S1"}
    # The same in another channel is that channel's own.
    _run(service, "subscribe app --events push,delete", channel="C0OTHER")
    assert set(_stored(text_redis)) == {"S1", "S2"}


def test_a_channel_has_at_most_its_cap_of_subscriptions(service: Service, text_redis: redis.Redis) -> None:
    for number in range(MAX_PER_CHANNEL):
        kind, _ = _run(service, f"subscribe app-{number}")
        assert kind is ReplyKind.ANSWER
    kind, text = _run(service, "subscribe one-too-many")
    assert kind is ReplyKind.ANSWER
    assert f"has {MAX_PER_CHANNEL} subscriptions already" in text and "`/registry unsubscribe ID`" in text
    assert len(_stored(text_redis)) == MAX_PER_CHANNEL
    assert "one-too-many" not in text_redis.hget(SUBSCRIPTIONS_KEY, f"S{MAX_PER_CHANNEL}") or ""
    # Other channels are not held back by this one's cap.
    kind, _ = _run(service, "subscribe app-0", channel="C0OTHER")
    assert len(_stored(text_redis)) == MAX_PER_CHANNEL + 1
    # The listing of a full channel still fits one answer.
    kind, listing = _run(service, "subscriptions")
    assert kind is ReplyKind.ANSWER and "more." in listing and len(listing) < 3000


@pytest.mark.parametrize(
    ("user", "text", "fragments"),
    [
        ("U0ADMIN", "can-i subscribe", ["Yes: you may subscribe <#C0OPS>", "grants[0] role admin"]),
        ("U0DEV1", "can-i subscribe", ["No: you may not run `subscribe`"]),
        ("U0SUB", "can-i subscribe --registry other", ["Yes"]),
        ("U0SUB", "can-i subscribe --registry main", ["No"]),
        ("U0SUB", "can-i subscribe", ["No: you may not run `subscribe` on registry `main`"]),
        ("U0ADMIN", "can-i subscribe --registry nope", ["unknown registry `nope`"]),
    ],
)
def test_can_i_subscribe(service: Service, text_redis: redis.Redis, user: str, text: str,
                         fragments: list[str]) -> None:
    _kind, answer = _run(service, text, user=user)
    for fragment in fragments:
        assert fragment in answer, answer
    assert _stored(text_redis) == {}


def test_help_and_whoami_offer_the_subscription_commands_by_role(service: Service) -> None:
    _kind, admin = _run(service, "help")
    assert "`/registry subscribe IMAGE_GLOB" in admin and "`/registry subscriptions`" in admin
    _kind, deployer = _run(service, "help", user="U0DEV1")
    assert "`/registry subscriptions`" in deployer and "`/registry subscribe IMAGE_GLOB" not in deployer
    _kind, whoami = _run(service, "whoami", user="U0DEV1")
    assert "`subscriptions`" in whoami and "`subscribe`" not in whoami


def test_the_store_skips_what_it_cannot_read(text_redis: redis.Redis) -> None:
    store = SubscriptionStore(text_redis)
    made = store.add("C0OPS", ("app",), (), ("push",), None, "U0ADMIN", 1.0)
    text_redis.hset(SUBSCRIPTIONS_KEY, mapping={"S7": "not json", "S8": json.dumps({"id": "S8"}),
                                                 "S9": json.dumps({**json.loads(made.to_json()), "id": "S9",
                                                                   "events": ["pull"]})})
    assert store.all() == [made]
    assert store.for_channel("C0OPS") == [made] and store.for_channel("C0ELSE") == []
    # Removing by glob removes only that channel's, and what is unreadable stays for an operator to see.
    store.add("C0ELSE", ("app",), (), ("push",), None, "U0ADMIN", 2.0)
    assert [item.id for item in store.remove("C0OPS", "app")] == [made.id]
    assert set(text_redis.hkeys(SUBSCRIPTIONS_KEY)) == {"S2", "S7", "S8", "S9"}


def test_the_audit_entry_and_the_subscription_are_written_together(text_redis: redis.Redis) -> None:
    """Nothing acknowledged is lost: the subscription and its audit entry are one transaction."""
    service = make_service(CONFIG, text_redis)
    _run(service, "subscribe app")
    entries = [entry for entry in AuditLog(text_redis).entries() if entry.decision == "allowed"]
    assert [entry.outcome.split(":")[0] for entry in entries] == ["subscribed S1"]
    assert set(_stored(text_redis)) == {"S1"}


def test_in_the_console_the_channel_is_the_shell_s(text_redis: redis.Redis) -> None:
    service = _service(text_redis, _config())
    out = io.StringIO()
    shell = Shell(service, text_redis, user="U0ADMIN", channel="C0CONSOLE", out=out)
    assert shell.run(["subscribe centos7-* --events delete", "subscriptions"]) == 0
    assert _stored(text_redis)["S1"]["channel"] == "C0CONSOLE"
    text = out.getvalue()
    assert "Subscribed #C0CONSOLE as S1" in text and "deletes of centos7-*" in text, text
    assert "`" not in text  # plain text in the console
    # A shell with no channel subscribes nothing.
    bare = io.StringIO()
    Shell(service, text_redis, user="U0ADMIN", channel=None, out=bare).run(["subscribe web"])
    assert "came from no channel" in bare.getvalue() and set(_stored(text_redis)) == {"S1"}
