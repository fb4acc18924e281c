"""`regops audit` as a real subprocess on real Redis: only entries on standard output, oldest first,
filters, JSON lines, big streams, and what it says (on standard error) when it cannot read."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.core.audit import AuditLog, format_line
from tests.support.services import RedisServer, free_port
from workers.kernel.audit import AuditEntry
from workers.kernel.keys import AUDIT_STREAM

ROOT = Path(__file__).resolve().parents[2]
DB = 5  # apart from the databases the other end-to-end tests use


@pytest.fixture
def audit_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/{DB}", decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def regops_audit(redis_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No config file anywhere: the working directory is empty and REGOPS_CONFIG is unset.
    return subprocess.run([sys.executable, "-m", "bot", "audit", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url})


def url(connection: redis.Redis) -> str:
    kwargs = connection.connection_pool.connection_kwargs
    return f"redis://127.0.0.1:{kwargs['port']}/{kwargs['db']}"


def make(n: int, user: str = "U0DEV1", **fields: str) -> AuditEntry:
    values = {"channel": "C0OPS", "kind": "command", "command": f"push centos7-app {n}", "decision": "queued",
              "rule": "grants[1] role deployer", "job_id": f"job{n:09d}"}
    values.update(fields)
    return AuditEntry(at=1_700_000_000.0 + n, user=user, **values)  # type: ignore[arg-type]


def trail(connection: redis.Redis) -> list[AuditEntry]:
    entries = [
        make(1),
        make(2, user="U0NOBODY", decision="denied", job_id="", rule="no grant matches",
             outcome="no grant lets you push centos7-app:2"),
        make(3, user="U0ADMIN", command="login -u admin -p [redacted]", decision="refused", job_id="",
             rule="credentials in chat"),
        make(4, channel="", kind="job", command="", decision="succeeded", rule="", outcome="sha256:" + "a" * 64),
        make(5, user="U0ADMIN", kind="approval", command="", decision="approved", rule="approvals[0]"),
    ]
    log = AuditLog(connection)
    for entry in entries:
        log.record(entry)
    return entries


def test_without_filters_it_prints_the_whole_trail_oldest_first_and_nothing_else(
        audit_redis: redis.Redis, tmp_path: Path) -> None:
    entries = trail(audit_redis)
    result = regops_audit(url(audit_redis), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [format_line(e) for e in entries]


def test_json_prints_one_object_per_line(audit_redis: redis.Redis, tmp_path: Path) -> None:
    entries = trail(audit_redis)
    result = regops_audit(url(audit_redis), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == [e.to_json() for e in entries]
    assert [AuditEntry(**{k: v for k, v in json.loads(line).items() if k != "time"}) for line in lines] == entries


def test_user_keeps_that_users_entries(audit_redis: redis.Redis, tmp_path: Path) -> None:
    entries = trail(audit_redis)
    result = regops_audit(url(audit_redis), "--user", "U0ADMIN", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["job_id"] for line in result.stdout.splitlines()] == [
        e.job_id for e in entries if e.user == "U0ADMIN"]


def test_since_keeps_recent_entries(audit_redis: redis.Redis, tmp_path: Path) -> None:
    seconds, micros = audit_redis.time()
    now_ms = seconds * 1000 + micros // 1000
    for age_ms, entry in [(3 * 86_400_000, make(1)), (2 * 3_600_000, make(2)), (20 * 60_000, make(3))]:
        audit_redis.xadd(AUDIT_STREAM, dict(entry.to_fields()), id=f"{now_ms - age_ms}-0")
    AuditLog(audit_redis).record(make(4))

    def since(duration: str) -> list[str]:
        result = regops_audit(url(audit_redis), "--since", duration, "--json", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return [json.loads(line)["job_id"] for line in result.stdout.splitlines()]

    assert since("30m") == ["job000000003", "job000000004"]
    assert since("3h") == ["job000000002", "job000000003", "job000000004"]
    assert since("4d") == ["job000000001", "job000000002", "job000000003", "job000000004"]
    assert since("90s") == ["job000000004"]


def test_an_empty_trail_prints_nothing_and_says_so_on_stderr(audit_redis: redis.Redis, tmp_path: Path) -> None:
    result = regops_audit(url(audit_redis), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "")
    assert "no entries" in result.stderr
    trail(audit_redis)
    filtered = regops_audit(url(audit_redis), "--user", "U0GHOST", cwd=tmp_path)
    assert (filtered.returncode, filtered.stdout) == (0, "")
    assert "no entries match" in filtered.stderr


def test_unreachable_redis_exits_1_with_the_reason_on_stderr_and_no_password(tmp_path: Path) -> None:
    password = "audit-pw-must-not-show"
    result = regops_audit(f"redis://:{password}@127.0.0.1:{free_port()}/0", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Redis" in result.stderr and "REDIS_URL" in result.stderr
    assert password not in result.stderr


def test_a_bad_duration_is_a_usage_error(audit_redis: redis.Redis, tmp_path: Path) -> None:
    result = regops_audit(url(audit_redis), "--since", "2 hours", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert "duration" in result.stderr and "30m" in result.stderr


def test_debug_logging_never_reaches_stdout(audit_redis: redis.Redis, tmp_path: Path) -> None:
    entries = trail(audit_redis)
    result = subprocess.run([sys.executable, "-m", "bot", "--log-level", "DEBUG", "audit"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, check=False,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REDIS_URL": url(audit_redis),
                                 "REGOPS_LOG_LEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [format_line(e) for e in entries]


def test_a_big_trail_is_printed_whole_in_order(audit_redis: redis.Redis, tmp_path: Path) -> None:
    pipe = audit_redis.pipeline(transaction=False)
    for n in range(2345):
        pipe.xadd(AUDIT_STREAM, dict(make(n).to_fields()))
    pipe.execute()
    result = regops_audit(url(audit_redis), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["job_id"] for line in result.stdout.splitlines()] == [
        f"job{n:09d}" for n in range(2345)]


def test_a_reader_that_stops_early_ends_it_quietly(audit_redis: redis.Redis, tmp_path: Path) -> None:
    pipe = audit_redis.pipeline(transaction=False)
    for n in range(3000):
        pipe.xadd(AUDIT_STREAM, dict(make(n).to_fields()))
    pipe.execute()
    process = subprocess.Popen([sys.executable, "-m", "bot", "audit"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=tmp_path, text=True,
                               env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "REDIS_URL": url(audit_redis)})
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # as `regops audit | head -1` does
    code = process.wait(timeout=60)
    stderr = process.stderr.read()
    process.stderr.close()
    assert first == format_line(make(0)) + "\n"
    assert code == 0 and "Traceback" not in stderr and "Broken pipe" not in stderr, stderr
