"""The audit trail on real Redis: entries appended (alone or in a caller's transaction), read back in
order and in pages, filtered; the one-line rendering; durations; the entry contract."""

from __future__ import annotations

import json

import pytest
import redis

from bot.core.audit import AuditLog, format_line, parse_duration
from tests.support.services import RedisServer
from workers.kernel.audit import AuditEntry
from workers.kernel.keys import AUDIT_STREAM


def entry(n: int = 0, *, user: str = "U0DEV1", kind: str = "command", decision: str = "queued",
          channel: str = "C0OPS", command: str | None = None, rule: str = "grants[1] role deployer",
          job_id: str | None = None, outcome: str = "") -> AuditEntry:
    return AuditEntry(at=1_700_000_000.0 + n, user=user, channel=channel, kind=kind,
                      command=f"push centos7-app {n}" if command is None else command, decision=decision,
                      rule=rule, job_id=f"job{n:09d}" if job_id is None else job_id, outcome=outcome)


def test_recorded_entries_come_back_equal_and_oldest_first(text_redis: redis.Redis) -> None:
    log = AuditLog(text_redis)
    written = [entry(n) for n in range(5)]
    for item in written:
        log.record(item)
    assert list(log.entries()) == written


def test_an_entry_given_a_pipeline_is_written_only_when_the_caller_executes_it(text_redis: redis.Redis,
                                                                              redis_server: RedisServer) -> None:
    # The bot enqueues on a bytes connection and records the decision in that same MULTI.
    raw = redis_server.client(decode_responses=False)
    try:
        log = AuditLog(text_redis)
        pipe = raw.pipeline(transaction=True)
        pipe.multi()
        pipe.set("regops:test:enqueued", "1")
        log.record(entry(1), pipeline=pipe)
        assert text_redis.xlen(AUDIT_STREAM) == 0
        pipe.execute()
        assert list(log.entries()) == [entry(1)]
        assert text_redis.get("regops:test:enqueued") == "1"
    finally:
        raw.close()


def test_a_discarded_transaction_leaves_no_entry(text_redis: redis.Redis) -> None:
    log = AuditLog(text_redis)
    pipe = text_redis.pipeline(transaction=True)
    log.record(entry(1), pipeline=pipe)
    pipe.reset()
    assert text_redis.xlen(AUDIT_STREAM) == 0


@pytest.mark.parametrize(
    ("kind", "decision"),
    [("command", "succeeded"), ("job", "allowed"), ("approval", "queued"), ("shell", "allowed"), ("command", "")],
)
def test_an_entry_outside_the_vocabulary_is_refused_and_not_written(text_redis: redis.Redis, kind: str,
                                                                   decision: str) -> None:
    with pytest.raises(ValueError):
        AuditLog(text_redis).record(entry(kind=kind, decision=decision))
    assert text_redis.xlen(AUDIT_STREAM) == 0


@pytest.mark.parametrize(
    ("kind", "decisions"),
    [
        ("command", ["allowed", "queued", "denied", "invalid", "refused", "needs_approval", "answered"]),
        ("approval", ["requested", "approved", "rejected", "expired", "refused"]),
        ("job", ["succeeded", "failed"]),
    ],
)
def test_every_documented_decision_is_accepted(text_redis: redis.Redis, kind: str, decisions: list[str]) -> None:
    log = AuditLog(text_redis)
    for decision in decisions:
        log.record(entry(kind=kind, decision=decision))
    assert [e.decision for e in log.entries()] == decisions


@pytest.mark.parametrize("count", [0, 1, 6, 7, 8])
def test_entries_are_read_in_pages_without_loss_or_repeat(text_redis: redis.Redis, count: int) -> None:
    for n in range(count):
        AuditLog(text_redis).record(entry(n))
    text_redis.config_resetstat()
    got = list(AuditLog(text_redis, page_size=3).entries())
    assert [e.job_id for e in got] == [f"job{n:09d}" for n in range(count)]
    calls = int(text_redis.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0))
    assert calls == count // 3 + 1  # full pages, then the short (or empty) one that ends the read


def test_entries_are_streamed_page_by_page(text_redis: redis.Redis) -> None:
    log = AuditLog(text_redis, page_size=2)
    for n in range(6):
        log.record(entry(n))
    text_redis.config_resetstat()
    reader = log.entries()
    assert next(reader).job_id == "job000000000"
    assert int(text_redis.info("commandstats")["cmdstat_xrange"]["calls"]) == 1


def test_since_is_a_lower_bound_on_when_redis_appended_the_entry(text_redis: redis.Redis) -> None:
    log = AuditLog(text_redis)
    # Entries whose stream ids say they were appended an hour and a minute ago.
    seconds, micros = text_redis.time()
    now_ms = seconds * 1000 + micros // 1000
    text_redis.xadd(AUDIT_STREAM, dict(entry(1).to_fields()), id=f"{now_ms - 3_600_000}-0")
    text_redis.xadd(AUDIT_STREAM, dict(entry(2).to_fields()), id=f"{now_ms - 60_000}-0")
    log.record(entry(3))
    now = seconds + micros / 1e6
    assert [e.job_id for e in log.entries(since=now - 120)] == ["job000000002", "job000000003"]
    assert [e.job_id for e in log.entries(since=now - 7200)] == ["job000000001", "job000000002", "job000000003"]
    assert [e.job_id for e in log.entries(since=now + 60)] == []


def test_the_user_filter_keeps_that_users_entries_of_every_kind(text_redis: redis.Redis) -> None:
    log = AuditLog(text_redis, page_size=2)
    log.record(entry(1, user="U0A"))
    log.record(entry(2, user="U0B"))
    log.record(entry(3, user="U0A", kind="job", decision="succeeded", command="", outcome="sha256:" + "e" * 64))
    log.record(entry(4, user="U0AB"))
    assert [e.job_id for e in log.entries(user="U0A")] == ["job000000001", "job000000003"]
    assert list(log.entries(user="U0NOBODY")) == []


def test_the_log_offers_no_way_to_remove_entries() -> None:
    public = {name for name in dir(AuditLog) if not name.startswith("_")}
    assert public == {"record", "entries"}


def test_an_entry_survives_its_fields_unchanged_and_unknown_fields_are_ignored() -> None:
    original = entry(3, kind="approval", decision="approved", outcome="1 of 1 approvals")
    fields = original.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert AuditEntry.from_fields({**fields, "added_later": "x"}) == original


def test_a_damaged_entry_still_reads_rather_than_disappearing() -> None:
    damaged = AuditEntry.from_fields({"at": "not-a-time", "kind": "command", "decision": "queued"})
    assert (damaged.at, damaged.kind, damaged.user, damaged.command) == (0.0, "command", "", "")


def test_json_form_carries_every_field_and_an_iso_time() -> None:
    data = entry(0).to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["time"] == "2023-11-14T22:13:20.000Z"
    assert {k: data[k] for k in ("user", "channel", "kind", "decision", "rule", "job_id", "command")} == {
        "user": "U0DEV1", "channel": "C0OPS", "kind": "command", "decision": "queued",
        "rule": "grants[1] role deployer", "job_id": "job000000000", "command": "push centos7-app 0"}
    assert data["at"] == 1_700_000_000.0 and data["version"] == 1


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (entry(0),
         ('2023-11-14T22:13:20.000Z user=U0DEV1 channel=C0OPS kind=command decision=queued '
          'rule="grants[1] role deployer" job=job000000000 command="push centos7-app 0"')),
        (AuditEntry(at=1_700_000_000.25, user="", channel="", kind="job", command="", decision="failed",
                    job_id="abc", outcome="auth_failed: registry authentication failed"),
         ('2023-11-14T22:13:20.250Z user=- channel=- kind=job decision=failed rule=- job=abc '
          'outcome="auth_failed: registry authentication failed"')),
        (entry(0, decision="denied", job_id="", rule="no grant matches", outcome="no grant for you"),
         ('2023-11-14T22:13:20.000Z user=U0DEV1 channel=C0OPS kind=command decision=denied '
          'rule="no grant matches" job=- command="push centos7-app 0" outcome="no grant for you"')),
    ],
)
def test_format_line(item: AuditEntry, expected: str) -> None:
    assert format_line(item) == expected


@pytest.mark.parametrize(
    "command",
    ["push a 1\n2023-11-14T22:13:21.000Z user=U0ADMIN decision=allowed", "push a 1\rX", "x\u2028y",
     "\u202etsil", 'say "hi" = \\'],
)
def test_format_line_keeps_any_command_on_one_unforgeable_line(command: str) -> None:
    line = format_line(entry(0, command=command))
    assert "\n" not in line and "\r" not in line and line.isprintable()
    quoted = line.split(" command=", 1)[1]
    assert json.loads(quoted) == command


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("1h30m", 5400), (" 2H ", 7200),
     ("0s", 0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "h", "2 h", "-2h", "2y", "1.5h", "2h-"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
