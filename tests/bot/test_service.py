"""The front-end-neutral command path on real Redis: what gets queued, and what never does."""

from __future__ import annotations

import json
import zlib

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from bot.core.assembly import build_core
from bot.core.service import ReplyKind, Request, Service
from workers.kernel.config import parse_config
from workers.kernel.jobs import JobRecord
from workers.kernel.keys import EVENTS_STREAM, job_key, origin_key, queue_name

CONFIG = {
    "registries": {"main": {"server": "dockerhub.example.com:5100", "services_hostname": "namespace.example.com",
                            "username": "user001@namespace.example.com", "password_env": "REGISTRY_PASSWORD"},
                   "other": {"server": "other.example.com", "services_hostname": "svc.example.org",
                             "username": "u", "password_file": "/run/secrets/other"}},
    "default_registry": "main",
    "hosts": ["build-1", "build-2"],
    "default_host": "build-1",
    "timeouts": {"push": "45m"},
    "access": {"roles": {"admin": {"actions": ["*"]},
                         "deployer": {"actions": ["push", "pull", "tag", "login"], "images": ["centos7-*"]}},
               "grants": [{"role": "admin", "users": ["U0ADMIN"]}, {"role": "deployer", "users": ["U0DEV1"]}]},
}


@pytest.fixture
def service(text_redis: redis.Redis) -> Service:
    config = parse_config(CONFIG)
    ids = iter(f"{n:012x}" for n in range(1, 1000))
    core = build_core(config, text_redis, Redis_bytes(text_redis))
    return Service(config, core.policy, core.queue, audit=core.audit, approvals=core.approvals,
                   jobs=core.jobs, job_ids=lambda: next(ids))


def _nothing_queued(connection: redis.Redis) -> None:
    assert list(connection.scan_iter("regops:job:*")) == []
    assert connection.xlen(EVENTS_STREAM) == 0 if connection.exists(EVENTS_STREAM) else True
    for host in ("build-1", "build-2"):
        assert Queue(queue_name(host), connection=connection).count == 0


def test_a_push_is_queued_as_json_with_the_full_reference_and_no_credentials(
        service: Service, text_redis: redis.Redis) -> None:
    reply = service.handle(Request(user_id="U0DEV1", text="push centos7-elasticsearch latest --host build-2",
                                   channel_id="C0OPS", response_url="https://hooks.example/r"))
    assert reply.kind is ReplyKind.QUEUED
    ref = "dockerhub.example.com:5100/com.example.namespace/centos7-elasticsearch:latest"
    assert ref in reply.text and "000000000001" in reply.text

    raw = Redis_bytes(text_redis)
    job = Job.fetch("000000000001", connection=raw, serializer=JSONSerializer)
    assert job.func_name == "workers.tasks.push"
    assert job.origin == queue_name("build-2")
    assert job.timeout == 45 * 60
    spec = job.kwargs["spec"]
    assert spec["reference"] == ref and spec["source"] == "centos7-elasticsearch:latest"
    assert spec["registry"] == "main" and spec["requester"] == "U0DEV1"
    assert "password" not in json.dumps(spec).lower()
    # JSON on the wire, never pickle.
    assert json.loads(zlib.decompress(raw.hget("rq:job:000000000001", "data")))

    record = JobRecord.from_fields(text_redis.hgetall(job_key("000000000001")))
    assert record.state == "queued" and record.host == "build-2" and record.reference == ref
    assert text_redis.hgetall(origin_key("000000000001"))["channel"] == "C0OPS"
    events = text_redis.xrange(EVENTS_STREAM)
    assert [e[1]["type"] for e in events] == ["queued"]


def Redis_bytes(connection: redis.Redis) -> redis.Redis:
    """rq needs a bytes connection to the same database."""
    kwargs = connection.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))


@pytest.mark.parametrize(
    ("user", "text", "kind", "must_contain"),
    [
        ("U0NOBODY", "push centos7-elasticsearch latest", ReplyKind.DENIED, ["push", "centos7-elasticsearch:latest"]),
        ("U0DEV1", "pull web latest", ReplyKind.DENIED, ["pull", "web:latest"]),
        ("U0NOBODY", "login", ReplyKind.DENIED, ["login"]),
        ("U0ADMIN", "psuh centos7 latest", ReplyKind.USAGE_ERROR, ["push", "help"]),
        ("U0ADMIN", "push centos7", ReplyKind.USAGE_ERROR, ["TAG"]),
        ("U0ADMIN", "push centos7 latest --host build-9", ReplyKind.USAGE_ERROR, ["build-9", "build-1", "build-2"]),
        ("U0ADMIN", "push centos7 latest --registry nope", ReplyKind.USAGE_ERROR, ["nope", "main", "other"]),
        ("U0ADMIN", "push centos7 latest -p s3cret", ReplyKind.CREDENTIALS, ["rotate"]),
        # Syntax is checked before permissions: a stranger's typo gets the usage answer.
        ("U0NOBODY", "push centos7", ReplyKind.USAGE_ERROR, ["TAG"]),
    ],
)
def test_bad_or_forbidden_commands_are_answered_and_queue_nothing(
        service: Service, text_redis: redis.Redis, user: str, text: str, kind: ReplyKind,
        must_contain: list[str]) -> None:
    reply = service.handle(Request(user_id=user, text=text, channel_id="C0OPS"))
    assert reply.kind is kind
    for fragment in must_contain:
        assert fragment in reply.text
    assert "s3cret" not in reply.text
    _nothing_queued(text_redis)


def test_help_is_open_to_everyone_and_queues_nothing(service: Service, text_redis: redis.Redis) -> None:
    reply = service.handle(Request(user_id="U0NOBODY", text="help push"))
    assert reply.kind is ReplyKind.HELP and "push" in reply.text
    _nothing_queued(text_redis)


def test_redis_down_is_answered_without_raw_exception_text(text_redis: redis.Redis) -> None:
    config = parse_config(CONFIG)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    service = build_core(config, dead, dead).service
    reply = service.handle(Request(user_id="U0ADMIN", text="push centos7 latest"))
    assert reply.kind is ReplyKind.ERROR
    assert "nothing was queued" in reply.text and "Connection" not in reply.text
