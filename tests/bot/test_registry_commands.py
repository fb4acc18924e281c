"""Registry commands on the service path, on real Redis: what is queued on the registry queue, and what is not."""

from __future__ import annotations

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from bot.core.replies import ReplyKind, Request
from bot.core.service import Service
from tests.support.core import bytes_redis, make_service
from tests.support.texts import slack
from workers.kernel.actions import REGISTRY_QUEUE
from workers.kernel.config import parse_config
from workers.kernel.errors import ConfigError
from workers.kernel.history import TagChange, record_changes
from workers.kernel.jobs import JobRecord
from workers.kernel.keys import job_key, queue_name

SERVER = "dockerhub.example.com:5100"
NS = "com.example.namespace"
DIGESTS = [f"sha256:{str(n) * 64}" for n in range(1, 5)]

CONFIG = {
    "registries": {"main": {"server": SERVER, "services_hostname": "namespace.example.com",
                            "username": "user001@namespace.example.com", "password_env": "REGISTRY_PASSWORD"},
                   "prod": {"server": "prod.example.com", "services_hostname": "namespace.example.com",
                            "username": "u", "password_env": "PROD_PASSWORD"}},
    "default_registry": "main",
    "hosts": ["build-1"],
    "access": {
        "roles": {"admin": {"actions": ["*"]},
                  "deployer": {"actions": ["push", "pull", "promote", "rollback", "tags", "inspect", "history"],
                               "images": ["centos7-*"], "hosts": ["build-*"]},
                  "promoter": {"actions": ["promote"], "images": ["centos7-*"]}},
        "grants": [{"role": "admin", "users": ["U0ADMIN"]}, {"role": "deployer", "users": ["U0DEV1"]},
                   {"role": "promoter", "users": ["U0PROMO"]}],
        "approvals": [{"tags": ["prod"], "approvers": ["admin"]}],
    },
}


@pytest.fixture
def service(text_redis: redis.Redis) -> Service:
    return make_service(CONFIG, text_redis)


def _ask(service: Service, text: str, user: str = "U0DEV1") -> tuple[ReplyKind, str]:
    reply = service.handle(Request(user_id=user, text=text, channel_id="C0OPS", response_url="https://hooks.example/r"))
    return reply.kind, slack(reply.text)


def _registry_queue(connection: redis.Redis) -> Queue:
    return Queue(queue_name(REGISTRY_QUEUE), connection=bytes_redis(connection), serializer=JSONSerializer)


def _spec(connection: redis.Redis, job_id: str) -> dict:
    job = Job.fetch(job_id, connection=bytes_redis(connection), serializer=JSONSerializer)
    assert job.origin == queue_name(REGISTRY_QUEUE)
    return dict(job.kwargs["spec"])


def _ref(image: str, tag: str, server: str = SERVER) -> str:
    return f"{server}/{NS}/{image}:{tag}"


def _history(connection: redis.Redis, reference: str, *digests: str | None) -> None:
    """Changes of ``reference`` through ``digests`` in order (the last is the current one)."""
    pipe = connection.pipeline()
    previous = None
    for at, digest in enumerate(digests, start=1):
        record_changes(pipe, [TagChange(at=float(at) * 1000, reference=reference, digest=digest, previous=previous,
                                        who="U0DEV1", how="push", job_id=f"{at:012x}")])
        previous = digest
    pipe.execute()


def test_tags_is_a_query_on_the_registry_queue_answered_later_for_the_asker(
        service: Service, text_redis: redis.Redis) -> None:
    kind, text = _ask(service, "tags centos7-es --match 'v*' --limit 5")
    assert kind is ReplyKind.LOOKING
    assert "for you only" in text and "000000000001" in text
    spec = _spec(text_redis, "000000000001")
    assert spec["action"] == "tags" and spec["reference"] == f"{SERVER}/{NS}/centos7-es"
    assert spec["match"] == "v*" and spec["limit"] == 5
    assert _registry_queue(text_redis).count == 1
    assert Queue(queue_name("build-1"), connection=bytes_redis(text_redis)).count == 0


def test_inspect_by_digest_is_a_query_on_that_digest(service: Service, text_redis: redis.Redis) -> None:
    kind, _ = _ask(service, f"inspect centos7-es@{DIGESTS[0]}")
    assert kind is ReplyKind.LOOKING
    assert _spec(text_redis, "000000000001")["reference"] == f"{SERVER}/{NS}/centos7-es@{DIGESTS[0]}"


def test_promote_is_a_job_on_the_registry_queue_from_the_source_to_the_target(
        service: Service, text_redis: redis.Redis) -> None:
    kind, text = _ask(service, "promote centos7-es staging qa --to-registry prod")
    assert kind is ReplyKind.QUEUED and "registry queue" in text
    spec = _spec(text_redis, "000000000001")
    assert spec["source"] == _ref("centos7-es", "staging")
    assert spec["reference"] == _ref("centos7-es", "qa", "prod.example.com")
    assert spec["registry"] == "prod" and spec["source_registry"] == "main"
    assert spec["source_server"] == SERVER and spec["server"] == "prod.example.com"
    record = JobRecord.from_fields(text_redis.hgetall(job_key("000000000001")))
    assert record.host == REGISTRY_QUEUE and record.source == spec["source"]
    # Decided on the target, so `status` by others follows the target's image and tag.
    assert record.extra["image"] == "centos7-es" and record.extra["tag"] == "qa"


def test_promote_needs_pull_on_the_source(service: Service, text_redis: redis.Redis) -> None:
    kind, text = _ask(service, "promote centos7-es staging qa", user="U0PROMO")
    assert kind is ReplyKind.DENIED
    assert "pull" in text and "centos7-es:staging" in text
    assert _registry_queue(text_redis).count == 0


def test_promote_is_checked_against_the_target_image(service: Service, text_redis: redis.Redis) -> None:
    kind, text = _ask(service, "promote centos7-es staging latest --to-image web")
    assert kind is ReplyKind.DENIED and "web:latest" in text
    assert _registry_queue(text_redis).count == 0


def test_an_approvals_rule_without_actions_protects_promote(service: Service, text_redis: redis.Redis) -> None:
    kind, _ = _ask(service, "promote centos7-es staging prod")
    assert kind is ReplyKind.APPROVAL
    assert _registry_queue(text_redis).count == 0


def test_registry_actions_ignore_a_roles_hosts(service: Service, text_redis: redis.Redis) -> None:
    # The deployer's hosts are build-*; the registry queue is no Docker host, so promote is allowed.
    kind, _ = _ask(service, "promote centos7-es staging qa")
    assert kind is ReplyKind.QUEUED


def test_delete_is_not_the_deployers_and_an_admin_delete_carries_shared(
        service: Service, text_redis: redis.Redis) -> None:
    kind, text = _ask(service, "delete centos7-es old")
    assert kind is ReplyKind.DENIED and "delete" in text
    assert _registry_queue(text_redis).count == 0
    kind, _ = _ask(service, "delete centos7-es old --shared", user="U0ADMIN")
    assert kind is ReplyKind.QUEUED
    spec = _spec(text_redis, "000000000001")
    assert spec["action"] == "delete" and spec["shared"] is True and spec["reference"] == _ref("centos7-es", "old")


def test_history_is_answered_at_once_from_redis(service: Service, text_redis: redis.Redis) -> None:
    _history(text_redis, _ref("centos7-es", "latest"), DIGESTS[0], DIGESTS[1])
    kind, text = _ask(service, "history centos7-es latest")
    assert kind is ReplyKind.ANSWER
    assert DIGESTS[1][7:19] in text and DIGESTS[0][7:19] in text
    assert text.index(DIGESTS[1][7:19]) < text.rindex(DIGESTS[0][7:19])  # newest first
    assert _registry_queue(text_redis).count == 0


def test_rollback_goes_back_to_the_digest_before_the_last_change(service: Service, text_redis: redis.Redis) -> None:
    _history(text_redis, _ref("centos7-es", "latest"), DIGESTS[0], DIGESTS[1], DIGESTS[2])
    kind, text = _ask(service, "rollback centos7-es latest")
    assert kind is ReplyKind.QUEUED and DIGESTS[1][7:19] in text
    spec = _spec(text_redis, "000000000001")
    assert spec["digest"] == DIGESTS[1] and spec["reference"] == _ref("centos7-es", "latest")


def test_rollback_to_a_digest_of_the_history(service: Service, text_redis: redis.Redis) -> None:
    _history(text_redis, _ref("centos7-es", "latest"), DIGESTS[0], DIGESTS[1], DIGESTS[2])
    kind, _ = _ask(service, f"rollback centos7-es latest --to {DIGESTS[0]}")
    assert kind is ReplyKind.QUEUED
    assert _spec(text_redis, "000000000001")["digest"] == DIGESTS[0]


@pytest.mark.parametrize(("history", "text", "expected"), [
    ((), "rollback centos7-es latest", "nothing to roll"),
    ((DIGESTS[0],), "rollback centos7-es latest", "nothing to roll"),
    ((DIGESTS[0], DIGESTS[1]), f"rollback centos7-es latest --to {DIGESTS[3]}", "not in the history"),
    ((DIGESTS[0], DIGESTS[1]), f"rollback centos7-es latest --to {DIGESTS[1]}", "already points at"),
])
def test_a_rollback_with_nothing_to_go_back_to_is_answered_and_queues_nothing(
        service: Service, text_redis: redis.Redis, history: tuple[str, ...], text: str, expected: str) -> None:
    _history(text_redis, _ref("centos7-es", "latest"), *history)
    kind, answer = _ask(service, text)
    assert kind is ReplyKind.ANSWER
    assert expected in answer.lower()
    assert _registry_queue(text_redis).count == 0
    assert list(text_redis.scan_iter("regops:job:*")) == []


def test_hosts_lists_the_registry_queue(service: Service, text_redis: redis.Redis) -> None:
    kind, text = _ask(service, "hosts", user="U0ADMIN")
    assert kind is ReplyKind.ANSWER and "Registry queue" in text and "build-1" in text


@pytest.mark.parametrize(("text", "protected"), [
    ("promote centos7-es staging prod", True),
    ("delete centos7-es prod", True),
    ("rollback centos7-es prod", True),
    ("promote centos7-es staging qa", False),
    ("tags centos7-es", False),
    ("inspect centos7-es prod", False),
    ("history centos7-es prod", False),
])
def test_the_default_approvals_rule_protects_every_action_that_changes_a_tag(
        service: Service, text_redis: redis.Redis, text: str, protected: bool) -> None:
    _history(text_redis, _ref("centos7-es", "prod"), DIGESTS[0], DIGESTS[1])
    kind, _ = _ask(service, text, user="U0ADMIN")
    assert (kind is ReplyKind.APPROVAL) is protected, kind


def test_can_i_knows_the_registry_actions(service: Service) -> None:
    kind, text = _ask(service, "can-i promote centos7-es prod")
    assert kind is ReplyKind.ANSWER and text.startswith("Yes, with approval")
    kind, text = _ask(service, "can-i delete centos7-es prod")
    assert kind is ReplyKind.ANSWER and text.startswith("No")
    kind, text = _ask(service, "can-i tags centos7-es")
    assert text.startswith("Yes") and f"{SERVER}/{NS}/centos7-es" in text


def test_no_approvals_rule_holds_up_reading_the_registry(text_redis: redis.Redis) -> None:
    document = {**CONFIG, "access": {**CONFIG["access"], "approvals": [{"actions": ["*"], "approvers": ["admin"]}]}}
    service = make_service(document, text_redis)
    _history(text_redis, _ref("centos7-es", "prod"), DIGESTS[0], DIGESTS[1])
    assert _ask(service, "tags centos7-es")[0] is ReplyKind.LOOKING
    assert _ask(service, "history centos7-es prod")[0] is ReplyKind.ANSWER
    assert _ask(service, "rollback centos7-es prod")[0] is ReplyKind.APPROVAL


def test_an_approvals_rule_naming_a_read_action_is_a_config_error() -> None:
    document = {**CONFIG, "access": {**CONFIG["access"], "approvals": [{"actions": ["tags"], "approvers": ["admin"]}]}}
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert "access.approvals[0].actions" in str(caught.value.summary())


def test_a_query_is_no_open_job_for_the_per_person_cap(text_redis: redis.Redis) -> None:
    service = make_service({**CONFIG, "limits": {"queued_per_user": 1}}, text_redis, limits=True)
    assert _ask(service, "promote centos7-es staging qa")[0] is ReplyKind.QUEUED
    assert _ask(service, "tags centos7-es")[0] is ReplyKind.LOOKING
    kind, text = _ask(service, "promote centos7-es staging qa2")
    assert kind is ReplyKind.LIMITED and "1 job" in text
