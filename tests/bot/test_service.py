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
from bot.core.replies import ReplyKind, Request
from bot.core.service import Service
from tests.support.core import bytes_redis, make_service
from tests.support.texts import slack
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
    return make_service(CONFIG, text_redis)


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
    assert ref in slack(reply.text) and "000000000001" in slack(reply.text)

    raw = bytes_redis(text_redis)
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
        assert fragment in slack(reply.text)
    assert "s3cret" not in slack(reply.text)
    _nothing_queued(text_redis)


def test_help_is_open_to_everyone_and_queues_nothing(service: Service, text_redis: redis.Redis) -> None:
    reply = service.handle(Request(user_id="U0NOBODY", text="help push"))
    assert reply.kind is ReplyKind.HELP and "push" in slack(reply.text)
    _nothing_queued(text_redis)


def test_redis_down_is_answered_without_raw_exception_text(text_redis: redis.Redis) -> None:
    config = parse_config(CONFIG)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    service = build_core(config, dead, dead).service
    reply = service.handle(Request(user_id="U0ADMIN", text="push centos7 latest"))
    assert reply.kind is ReplyKind.ERROR
    assert "nothing was queued" in slack(reply.text) and "Connection" not in slack(reply.text)


def test_a_second_job_of_one_reference_says_which_job_it_waits_for(service: Service, text_redis: redis.Redis) -> None:
    """Defect: the second push of a reference only showed "queued", not that it waits for the first."""
    first = service.handle(Request(user_id="U0DEV1", text="push centos7-a latest", channel_id="C0OPS"))
    second = service.handle(Request(user_id="U0DEV1", text="push centos7-a latest --host build-2",
                                    channel_id="C0OPS"))
    other = service.handle(Request(user_id="U0DEV1", text="push centos7-b latest", channel_id="C0OPS"))
    assert first.job is not None and second.job is not None and other.job is not None
    waiting = f"waiting for job {first.job.job_id} (same reference)"
    assert waiting in slack(second.text)
    assert JobRecord.from_fields(text_redis.hgetall(job_key(second.job.job_id))).message == waiting
    assert "waiting for job" not in slack(first.text) + slack(other.text)
    # Once the first has ended, a new job of the reference waits for nobody.
    text_redis.hset(job_key(first.job.job_id), "state", "succeeded")
    text_redis.hset(job_key(second.job.job_id), "state", "failed")
    third = service.handle(Request(user_id="U0DEV1", text="push centos7-a latest", channel_id="C0OPS"))
    assert "waiting for job" not in slack(third.text)


def test_a_refused_cancel_click_is_audited_like_a_typed_cancel(service: Service, text_redis: redis.Redis) -> None:
    """Defect: Slack buttons bypassed the service, so a refused Cancel click left no audit entry."""
    from bot.core.replies import Click, ClickAction
    from workers.kernel.keys import AUDIT_STREAM

    queued = service.handle(Request(user_id="U0ADMIN", text="push web-frontend 1", channel_id="C0OPS"))
    assert queued.job is not None
    job_id = queued.job.job_id
    typed = service.handle(Request(user_id="U0DEV1", text=f"cancel {job_id}", channel_id="C0OPS"))
    clicked = service.click(Click(ClickAction.CANCEL, job_id, "U0DEV1", "C0OPS"))
    assert typed.kind is clicked.kind is ReplyKind.DENIED
    entries = [fields for _id, fields in text_redis.xrange(AUDIT_STREAM)
               if fields["job_id"] == job_id and fields["kind"] == "command"]
    decisions = [(entry["user"], entry["command"], entry["decision"]) for entry in entries]
    assert decisions.count(("U0DEV1", f"cancel {job_id}", "denied")) == 2
    # The clicker is told why, ephemerally, through the relay's notice; the job is still queued.
    notices = [fields for _id, fields in text_redis.xrange(EVENTS_STREAM) if fields.get("type") == "notice"]
    assert len(notices) == 1 and notices[0]["user"] == "U0DEV1"
    assert JobRecord.from_fields(text_redis.hgetall(job_key(job_id))).state == "queued"


# --- hostile chat input and --source (issue 9) ----------------------------------------------------


def _audit(connection: redis.Redis) -> list[dict[str, str]]:
    from workers.kernel.keys import AUDIT_STREAM

    return [fields for _id, fields in connection.xrange(AUDIT_STREAM)]


@pytest.mark.parametrize(
    "text",
    ["push centos7-a latest --api-key S3cretValue", "push centos7-a latest REGISTRY_PASSWORD=S3cretValue",
     "push centos7-a latest --source u:S3cretValue@host/x", "login --registry-password S3cretValue"],
)
def test_credential_shapes_are_refused_and_audited_redacted(service: Service, text_redis: redis.Redis,
                                                            text: str) -> None:
    reply = service.handle(Request(user_id="U0ADMIN", text=text, channel_id="C0OPS"))
    assert reply.kind is ReplyKind.CREDENTIALS and "rotate" in slack(reply.text)
    (entry,) = _audit(text_redis)
    assert entry["decision"] == "refused" and "[redacted]" in entry["command"]
    assert "S3cretValue" not in str(text_redis.xrange("regops:audit"))
    _nothing_queued(text_redis)


def test_a_text_longer_than_slack_sends_is_answered_and_audited_bounded(service: Service,
                                                                      text_redis: redis.Redis) -> None:
    reply = service.handle(Request(user_id="U0ADMIN", text="push " + "a" * 20_000, channel_id="C0OPS"))
    assert reply.kind is ReplyKind.USAGE_ERROR and "20,005 characters long" in slack(reply.text)
    (entry,) = _audit(text_redis)
    assert entry["decision"] == "invalid" and entry["command"] == "push… [20005 characters]"
    _nothing_queued(text_redis)


def test_an_invalid_command_keeps_only_a_bounded_text_in_the_audit_trail(service: Service,
                                                                       text_redis: redis.Redis) -> None:
    service.handle(Request(user_id="U0ADMIN", text="psuh " + "word " * 700, channel_id="C0OPS"))
    (entry,) = _audit(text_redis)
    assert entry["decision"] == "invalid" and entry["command"].endswith("… [3505 characters]")
    assert len(entry["command"]) <= 300 + len("… [3505 characters]")


SOURCES_CONFIG = {**CONFIG, "access": {
    "roles": {"builder": {"actions": ["push", "tag"], "images": ["centos7-*"], "sources": ["centos7-*", "sha256:*"]}},
    "grants": [{"role": "builder", "users": ["U0DEV1"]}]}}


@pytest.fixture
def sources_service(text_redis: redis.Redis) -> Service:
    config = parse_config(SOURCES_CONFIG)
    return build_core(config, text_redis, bytes_redis(text_redis)).service


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("push centos7-a 1 --source other-team/secret:1", ReplyKind.DENIED),
        ("tag other-team/secret:1 centos7-a 1", ReplyKind.DENIED),
        ("push centos7-a 1 --source centos7-build:dev", ReplyKind.QUEUED),
        ("tag 0123456789ab centos7-a 1", ReplyKind.QUEUED),
        ("push centos7-a 1", ReplyKind.QUEUED),
    ],
)
def test_sources_decide_what_a_command_may_start_from(sources_service: Service, text_redis: redis.Redis,
                                                      text: str, kind: ReplyKind) -> None:
    reply = sources_service.handle(Request(user_id="U0DEV1", text=text, channel_id="C0OPS"))
    assert reply.kind is kind, slack(reply.text)
    if kind is ReplyKind.DENIED:
        assert "`sources`" in slack(reply.text) and "other-team/secret:1" in slack(reply.text)
        _nothing_queued(text_redis)
        assert _audit(text_redis)[0]["rule"] == "grants[0] role builder: source not allowed"


def test_can_i_and_whoami_show_the_sources(sources_service: Service) -> None:
    def ask(text: str) -> str:
        return slack(sources_service.handle(Request(user_id="U0DEV1", text=text, channel_id="C0OPS")).text)

    assert "No: you may not push `centos7-a:1` from `other:1`" in ask("can-i push centos7-a 1 --source other:1")
    assert ask("can-i push centos7-a 1 --source centos7-b:1").startswith("Yes: you may push ")
    plain = ask("can-i push centos7-a 1")
    assert plain.startswith("Yes") and "must match `centos7-*`, `sha256:*`" in plain
    assert "local images (`--source`, tag's SOURCE) `centos7-*`, `sha256:*`" in ask("whoami")
