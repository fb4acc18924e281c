"""Guard rails on the service path, on real Redis: freezes from Slack, the config's windows, immutable tags and
promotion paths refuse a write at the acknowledgement (nothing queued, audited with the rule, counted by rail)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from bot.core.announcements import Announcement
from bot.core.metrics import Metrics
from bot.core.replies import Click, ClickAction, ReplyKind, Request
from bot.core.service import Service
from tests.support.core import bytes_redis, make_service
from tests.support.texts import slack
from workers.kernel.actions import REGISTRY_QUEUE
from workers.kernel.history import TagChange, record_changes
from workers.kernel.keys import AUDIT_STREAM, FREEZES_KEY, approval_key, job_key, outbox_key, queue_name

SERVER = "dockerhub.example.com:5100"
NS = "com.example.namespace"
D1, D2, D3 = (f"sha256:{str(n) * 64}" for n in range(1, 4))


def _config(**guards: object) -> dict:
    return {
        "registries": {"main": {"server": SERVER, "services_hostname": "namespace.example.com",
                                "username": "user001@namespace.example.com", "password_env": "REGISTRY_PASSWORD"},
                       "other": {"server": "other.example.com", "services_hostname": "namespace.example.com",
                                 "username": "u", "password_env": "OTHER_PASSWORD"}},
        "default_registry": "main",
        "hosts": ["build-1"],
        "notify_channel": "C0NOTIFY",
        "access": {
            "roles": {"admin": {"actions": ["*"]},
                      "deployer": {"actions": ["push", "pull", "promote", "rollback", "delete", "history"]}},
            "grants": [{"role": "admin", "users": ["U0ADMIN", "U0ADMIN2"]}, {"role": "deployer", "users": ["U0DEV1"]}],
        },
        "guards": guards,
    }


PATHS = {"promotion_paths": [{"images": ["app-*"], "stages": ["dev", "staging", "prod"]}]}
IMMUTABLE = {"immutable": [{"images": ["*"], "tags": ["v[0-9]*"]}]}


@pytest.fixture
def metrics(text_redis: redis.Redis) -> Metrics:
    return Metrics(text_redis)


@pytest.fixture
def service(text_redis: redis.Redis, metrics: Metrics) -> Service:
    return make_service(_config(**PATHS, **IMMUTABLE), text_redis, metrics=metrics)


def _ask(service: Service, text: str, user: str = "U0DEV1") -> tuple[ReplyKind, str]:
    reply = service.handle(Request(user_id=user, text=text, channel_id="C0OPS", response_url="https://hooks.example/r"))
    return reply.kind, slack(reply.text)


def _queued(connection: redis.Redis) -> int:
    """Jobs waiting on the host's and the registry's queues."""
    return sum(Queue(queue_name(name), connection=bytes_redis(connection), serializer=JSONSerializer).count
               for name in ("build-1", REGISTRY_QUEUE))


def _spec(connection: redis.Redis, job_id: str) -> dict:
    return dict(Job.fetch(job_id, connection=bytes_redis(connection), serializer=JSONSerializer).kwargs["spec"])


def _audit(connection: redis.Redis) -> list[dict[str, str]]:
    return [fields for _id, fields in connection.xrange(AUDIT_STREAM)]


def _notices(connection: redis.Redis, channel: str = "C0NOTIFY") -> list[Announcement]:
    return [Announcement.from_json(raw) for raw in connection.lrange(outbox_key(channel), 0, -1)]


def _ref(image: str, tag: str) -> str:
    return f"{SERVER}/{NS}/{image}:{tag}"


def _history(connection: redis.Redis, reference: str, *digests: str) -> None:
    pipe = connection.pipeline()
    previous = None
    for at, digest in enumerate(digests, start=1):
        record_changes(pipe, [TagChange(at=float(at) * 1000, reference=reference, digest=digest, previous=previous,
                                        who="U0DEV1", how="push", job_id=f"{at:012x}")])
        previous = digest
    pipe.execute()


def _guard_refusals(metrics: Metrics) -> dict[str, float]:
    return dict(metrics.read([]).guarded)


# ---- freeze, unfreeze, freezes -------------------------------------------------------------------


def test_a_freeze_is_stored_audited_and_announced_in_the_notify_channel(service: Service,
                                                                        text_redis: redis.Redis) -> None:
    before = time.time()
    kind, text = _ask(service, 'freeze centos7-* --tags latest,v* --for 2h --reason "release week"', user="U0ADMIN")
    assert kind is ReplyKind.ANSWER
    assert "Freeze `F1` started" in text and "`centos7-*`" in text and "2h" in text and "`/registry unfreeze F1`" in text
    stored = json.loads(text_redis.hget(FREEZES_KEY, "F1"))
    assert stored["images"] == ["centos7-*"] and stored["tags"] == ["latest", "v*"] and stored["registries"] == ["*"]
    assert stored["reason"] == "release week" and stored["who"] == "U0ADMIN"
    assert 7199 <= stored["ends"] - before <= 7201 + (time.time() - before)
    entry = _audit(text_redis)[-1]
    assert entry["decision"] == "allowed" and entry["outcome"] == "started F1" and entry["rule"].startswith("grants[0]")
    [notice] = _notices(text_redis)
    assert notice.kind == "notice" and notice.who == "U0ADMIN"
    assert "Freeze F1 started" in notice.text and "release week" in notice.text


def test_a_freeze_needs_the_freeze_action_and_stores_nothing_without_it(service: Service,
                                                                        text_redis: redis.Redis) -> None:
    kind, text = _ask(service, 'freeze centos7-* --for 2h --reason "mine"', user="U0DEV1")
    assert kind is ReplyKind.DENIED
    assert "freeze" in text
    assert text_redis.hlen(FREEZES_KEY) == 0 and _notices(text_redis) == []
    assert _audit(text_redis)[-1]["decision"] == "denied"


@pytest.mark.parametrize(("text", "fragment"), [
    ("freeze centos7-* --for 2h", "--reason TEXT"),
    ('freeze centos7-* --reason "x"', "--for DURATION"),
    ('freeze centos7-* --for 2h --until 18:00 --reason "x"', "one of them"),
    ('freeze centos7-* --for soon --reason "x"', "not a duration"),
    ("freeze centos7-* --for 2h --reason no deploys", "in quotes"),
    ('freeze centos7-* --until 2001-01-01T00:00Z --reason "x"', "already passed"),
    ('freeze centos7-* --for 2h --reason "' + "x" * 201 + '"', "at most 200"),
    ('freeze centos7-* --for 2h --reason "x" --registry nope', "unknown registry"),
])
def test_bad_freezes_are_refused_and_change_nothing(service: Service, text_redis: redis.Redis, text: str,
                                                    fragment: str) -> None:
    kind, answer = _ask(service, text, user="U0ADMIN")
    assert kind is ReplyKind.USAGE_ERROR
    assert fragment in answer
    assert text_redis.hlen(FREEZES_KEY) == 0 and _notices(text_redis) == []


def test_a_reason_that_looks_like_a_credential_is_refused_and_not_stored(service: Service,
                                                                         text_redis: redis.Redis) -> None:
    kind, answer = _ask(service, 'freeze centos7-* --for 2h --reason "password=hunter2hunter2"', user="U0ADMIN")
    assert kind is ReplyKind.CREDENTIALS
    assert "hunter2" not in answer
    assert text_redis.hlen(FREEZES_KEY) == 0
    assert "hunter2" not in json.dumps(_audit(text_redis))


def test_a_freeze_refuses_a_push_at_the_ack_and_unfreeze_lets_it_through(service: Service, text_redis: redis.Redis,
                                                                         metrics: Metrics) -> None:
    _ask(service, 'freeze centos7-* --for 1h --reason "release week"', user="U0ADMIN")
    kind, text = _ask(service, "push centos7-es latest")
    assert kind is ReplyKind.DENIED
    assert "frozen by freeze F1 (<@U0ADMIN>): release week; until `" in text and "Nothing was queued" in text
    assert _queued(text_redis) == 0 and not text_redis.exists(job_key("000000000001"))
    entry = _audit(text_redis)[-1]
    assert entry["decision"] == "denied" and entry["rule"] == "freeze F1" and entry["outcome"].startswith("freeze:")
    assert _guard_refusals(metrics) == {"freeze": 1.0}

    kind, _ = _ask(service, "push web latest")  # not covered by the freeze
    assert kind is ReplyKind.QUEUED

    kind, text = _ask(service, "unfreeze F1", user="U0DEV1")
    assert kind is ReplyKind.DENIED  # unfreeze needs what freeze needs
    kind, text = _ask(service, "unfreeze f1", user="U0ADMIN")
    assert kind is ReplyKind.ANSWER and "Freeze `F1` ended" in text
    assert _audit(text_redis)[-1]["outcome"] == "ended F1"
    assert [n.text.split(":")[0] for n in _notices(text_redis)] == ["Freeze F1 started", "Freeze F1 ended early"]
    kind, _ = _ask(service, "push centos7-es latest")
    assert kind is ReplyKind.QUEUED
    kind, text = _ask(service, "unfreeze F1", user="U0ADMIN")
    assert kind is ReplyKind.ANSWER and "no active or scheduled freeze `F1`" in text


def test_a_freeze_of_one_registry_leaves_the_other_alone_and_refuses_promote_rollback_delete(
        service: Service, text_redis: redis.Redis) -> None:
    _ask(service, 'freeze ** --registry main --for 1h --reason "audit"', user="U0ADMIN")
    _history(text_redis, _ref("web", "latest"), D1, D2)
    for command in ("promote web latest qa", "rollback web latest", "delete web latest"):
        kind, text = _ask(service, command)
        assert kind is ReplyKind.DENIED, command
        assert "frozen by freeze F1" in text
    assert _queued(text_redis) == 0
    kind, _ = _ask(service, "push web latest --registry other")
    assert kind is ReplyKind.QUEUED
    kind, _ = _ask(service, "history web latest")  # reads are never frozen
    assert kind is ReplyKind.ANSWER


def test_freezes_lists_active_freezes_and_the_config_windows_for_every_role(text_redis: redis.Redis) -> None:
    hour = datetime.now(UTC).hour
    service = make_service(_config(freeze_windows=[
        {"name": "now", "cron": f"0 {hour} * * *", "duration": "1h", "reason": "always now"},
        {"name": "later", "cron": f"0 {(hour + 12) % 24} * * *", "duration": "1h", "reason": "not now"}]), text_redis)
    _ask(service, 'freeze centos7-* --for 3h --reason "incident 42"', user="U0ADMIN")
    kind, text = _ask(service, "freezes", user="U0DEV1")
    assert kind is ReplyKind.ANSWER
    assert "`F1`" in text and "incident 42" in text and "<@U0ADMIN>" in text and "active" in text
    assert "window `now`" in text and "*open now*" in text and "window `later`" in text and "next from" in text
    kind, text = _ask(service, "freezes", user="U0NOBODY")
    assert kind is ReplyKind.DENIED


def test_a_window_open_now_refuses_and_one_that_is_not_does_not(text_redis: redis.Redis, metrics: Metrics) -> None:
    now = datetime.now(UTC)
    open_now = {"name": "now", "cron": f"{now.minute} {now.hour} * * *", "duration": "1h", "reason": "change board",
                "images": ["centos7-*"]}
    later = {"name": "later", "cron": f"0 {(now.hour + 6) % 24} * * *", "duration": "1h", "reason": "nightly",
             "images": ["web"]}
    service = make_service(_config(freeze_windows=[open_now, later]), text_redis, metrics=metrics)
    kind, text = _ask(service, "push centos7-es latest")
    assert kind is ReplyKind.DENIED
    assert "frozen by window now: change board; until" in text
    assert _audit(text_redis)[-1]["rule"] == "window now"
    kind, _ = _ask(service, "push web latest")
    assert kind is ReplyKind.QUEUED
    assert _guard_refusals(metrics) == {"freeze": 1.0}


# ---- immutable tags ------------------------------------------------------------------------------


def test_an_immutable_tag_regops_knows_is_refused_for_push_rollback_and_delete(
        service: Service, text_redis: redis.Redis, metrics: Metrics) -> None:
    _history(text_redis, _ref("web", "v1.4.2"), D1, D2)
    for command in ("push web v1.4.2", "rollback web v1.4.2", "delete web v1.4.2"):
        kind, text = _ask(service, command)
        assert kind is ReplyKind.DENIED, command
        assert f"tag `v1.4.2` is immutable (guards.immutable[0]): it points at `{D2}` and stays there" in text
        assert _audit(text_redis)[-1]["rule"] == "guards.immutable[0]"
    assert _queued(text_redis) == 0
    assert _guard_refusals(metrics) == {"immutable": 3.0}
    kind, _ = _ask(service, "push web v1.5.0")  # not known yet: the worker checks against the registry
    assert kind is ReplyKind.QUEUED


def test_a_promote_onto_an_immutable_tag_queues_only_for_the_same_or_an_unknown_digest(
        service: Service, text_redis: redis.Redis) -> None:
    _history(text_redis, _ref("web", "v1"), D1)
    _history(text_redis, _ref("web", "rc-same"), D1)
    _history(text_redis, _ref("web", "rc-other"), D2)
    kind, text = _ask(service, "promote web rc-other v1")
    assert kind is ReplyKind.DENIED and "is immutable" in text
    kind, text = _ask(service, f"promote web @{D3} v1")
    assert kind is ReplyKind.DENIED and "is immutable" in text
    assert _queued(text_redis) == 0
    kind, _ = _ask(service, "promote web rc-same v1")  # the same digest again: a no-op, allowed
    assert kind is ReplyKind.QUEUED
    kind, _ = _ask(service, "promote web rc-unknown v1")  # regops cannot know: the worker decides
    assert kind is ReplyKind.QUEUED
    assert _queued(text_redis) == 2


# ---- promotion paths -----------------------------------------------------------------------------


def test_a_push_to_a_later_stage_is_refused_with_the_path(service: Service, text_redis: redis.Redis,
                                                          metrics: Metrics) -> None:
    kind, text = _ask(service, "push app-api prod")
    assert kind is ReplyKind.DENIED
    assert "`prod` is reached only from `staging`: dev → staging → prod (guards.promotion_paths[0])" in text
    assert "`promote app-api staging prod`" in text
    assert _audit(text_redis)[-1]["rule"] == "guards.promotion_paths[0]"
    kind, _ = _ask(service, "push app-api dev")  # the first stage
    assert kind is ReplyKind.QUEUED
    kind, _ = _ask(service, "push web prod")  # not on the path
    assert kind is ReplyKind.QUEUED
    assert _guard_refusals(metrics) == {"promotion_path": 1.0}


def test_a_promote_that_skips_a_stage_is_refused_and_the_allowed_one_is_queued(service: Service,
                                                                               text_redis: redis.Redis) -> None:
    for command in ("promote app-api dev prod", f"promote app-api @{D1} prod",
                    "promote app-api staging prod --to-registry other",
                    "promote app-web staging prod --to-image app-api"):
        kind, text = _ask(service, command)
        assert kind is ReplyKind.DENIED, command
        assert "is reached only from `staging`" in text
    assert _queued(text_redis) == 0
    kind, _ = _ask(service, "promote app-api staging prod")
    assert kind is ReplyKind.QUEUED
    spec = _spec(text_redis, "000000000001")
    assert spec["source"] == _ref("app-api", "staging") and spec["reference"] == _ref("app-api", "prod")
    assert spec.get("digest") is None


def test_a_pinned_promote_carries_the_digest_in_the_spec(service: Service, text_redis: redis.Redis) -> None:
    kind, text = _ask(service, f"promote app-api staging@{D1} prod")
    assert kind is ReplyKind.QUEUED
    assert "pinned to `111111111111`" in text
    spec = _spec(text_redis, "000000000001")
    assert spec["source"] == _ref("app-api", "staging") and spec["digest"] == D1
    assert spec["source_registry"] == "main"
    record = {k: v for k, v in text_redis.hgetall(job_key("000000000001")).items()}
    assert "to" not in json.loads(record.get("extra", "{}"))


# ---- can-i, whoami, help -------------------------------------------------------------------------


def test_can_i_names_the_rail_that_decides(service: Service, text_redis: redis.Redis) -> None:
    _history(text_redis, _ref("web", "v2"), D1)
    _, text = _ask(service, "can-i push web v2")
    assert "Yes" in text and "guard rails refuse it" in text and "`guards.immutable[0]`" in text
    _, text = _ask(service, "can-i push app-api prod")
    assert "guard rails refuse it" in text and "`guards.promotion_paths[0]`" in text
    _, text = _ask(service, "can-i promote app-api prod")
    assert "Only from the stage before it" in text and "staging" in text
    _ask(service, 'freeze web --for 1h --reason "hold"', user="U0ADMIN")
    _, text = _ask(service, "can-i delete web latest")
    assert "frozen by freeze F1" in text and "`freeze F1`" in text
    _, text = _ask(service, "can-i push other latest")
    assert "guard rails" not in text
    _, text = _ask(service, "can-i freeze")
    assert text.startswith("No")
    _, text = _ask(service, "can-i freeze --registry main", user="U0ADMIN")
    assert text.startswith("Yes")
    assert _queued(text_redis) == 0


def test_whoami_and_help_mention_freezes(service: Service) -> None:
    _, text = _ask(service, "whoami")
    assert "No change freeze applies now" in text and "`freezes`" in text
    _ask(service, 'freeze web --for 1h --reason "hold"', user="U0ADMIN")
    _, text = _ask(service, "whoami")
    assert "Change freezes now: 1 from Slack" in text
    _, text = _ask(service, "help", user="U0ADMIN")
    assert "*Change freezes*" in text and "/registry unfreeze ID" in text
    _, text = _ask(service, "help")  # a deployer may list freezes, not start them
    assert "`/registry freezes`" in text and "/registry unfreeze ID" not in text
    _, text = _ask(service, "help freeze")
    assert "--until TIME" in text and "admins by default" in text


# ---- break-glass ---------------------------------------------------------------------------------


def _click(service: Service, job_id: str, user: str) -> tuple[ReplyKind, str]:
    reply = service.click(Click(ClickAction.APPROVE, job_id, user, "C0OPS"))
    return reply.kind, slack(reply.text)


def test_an_override_needs_the_freeze_action(service: Service, text_redis: redis.Redis) -> None:
    kind, text = _ask(service, 'push app-api prod --override "hotfix 12"')
    assert kind is ReplyKind.DENIED
    assert "An override (`--override`) needs the `freeze` action" in text and "Nothing was queued" in text
    assert _queued(text_redis) == 0 and not text_redis.exists(approval_key("000000000001"))
    assert _audit(text_redis)[-1]["rule"].startswith("override of guards.promotion_paths[0] needs freeze")


def test_an_override_of_a_freeze_waits_for_a_second_person_allowed_to_freeze(service: Service,
                                                                             text_redis: redis.Redis) -> None:
    _ask(service, 'freeze web --for 1h --reason "release week"', user="U0ADMIN")
    kind, text = _ask(service, 'push web latest --override "hotfix for incident 42"', user="U0ADMIN")
    assert kind is ReplyKind.APPROVAL
    assert "break-glass override of freeze F1: hotfix for incident 42" in text
    assert _queued(text_redis) == 0
    approval = text_redis.hgetall(approval_key("000000000001"))
    assert approval["rule"] == "break-glass" and json.loads(approval["approvers"]) == ["admin"]
    assert json.loads(approval["spec"])["override"] == "hotfix for incident 42"
    entry = _audit(text_redis)[-1]
    assert entry["decision"] == "needs_approval" and entry["rule"].startswith("break-glass override of freeze F1")
    assert entry["outcome"] == "override: hotfix for incident 42"
    notice = _notices(text_redis)[-1]
    assert "Break-glass override" in notice.text and "hotfix for incident 42" in notice.text
    assert notice.who == "U0ADMIN"

    assert _click(service, "000000000001", "U0ADMIN")[0] is ReplyKind.DENIED  # never the requester
    kind, text = _click(service, "000000000001", "U0DEV1")  # a role without `freeze`
    assert kind is ReplyKind.DENIED and "only admin may (break-glass)" in text
    assert _queued(text_redis) == 0
    _click(service, "000000000001", "U0ADMIN2")
    assert _queued(text_redis) == 1
    spec = _spec(text_redis, "000000000001")
    assert spec["override"] == "hotfix for incident 42" and spec["reference"] == _ref("web", "latest")


def test_an_override_passes_a_promotion_path_but_never_an_immutable_tag(service: Service,
                                                                        text_redis: redis.Redis) -> None:
    kind, text = _ask(service, 'promote app-api dev prod --override "staging is down"', user="U0ADMIN")
    assert kind is ReplyKind.APPROVAL and "guards.promotion_paths[0]" in text
    _history(text_redis, _ref("app-v", "v1.0"), D1)
    _ask(service, 'freeze app-v --for 1h --reason "hold"', user="U0ADMIN")
    kind, text = _ask(service, 'push app-v v1.0 --override "must"', user="U0ADMIN")
    assert kind is ReplyKind.DENIED
    assert "is immutable" in text and "An immutable tag is never overridden" in text
    assert _audit(text_redis)[-1]["rule"] == "guards.immutable[0]"
    assert _queued(text_redis) == 0


def test_a_write_no_rail_refuses_ignores_the_override(service: Service, text_redis: redis.Redis) -> None:
    kind, _ = _ask(service, 'push web latest --override "just in case"')
    assert kind is ReplyKind.QUEUED
    assert "override" not in _spec(text_redis, "000000000001")
