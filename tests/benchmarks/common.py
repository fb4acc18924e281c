"""Pieces the benchmarks share: config files, signed requests, machine context, tables, clean shutdown.

Benchmarks are programs, not pytest tests: ``python -m tests.benchmarks.ack`` / ``.push``
from the repository root (``bash tests/benchmarks/run.sh`` does that).
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import signal
import statistics
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.slack_standin import sign, slash_command_body

NAMESPACE = "com.example.namespace"
HOST = "build-1"
PUSH_USER = "U0DEV1"  # granted push on centos7-* by the config below
SLACK_PATH = "/slack/events"


@dataclass(frozen=True)
class RegistryEntry:
    """One registry in a benchmark config."""

    name: str
    server: str
    username: str = "user001@namespace.example.com"
    password_env: str = "REGISTRY_PASSWORD"


BENCH_LIMITS = "limits: {commands_per_minute: 10000000, queued_per_user: 10000000, queued_per_host: 10000000}"
"""The benchmarks flood as one person (PUSH_USER, not exempt): the limits are raised, not turned off, so
every command takes the path of one that passes them (the rate window, the open-jobs script) and is
measured with it."""


def write_config(directory: Path, registries: Sequence[RegistryEntry], *, push_timeout: str = "10m") -> Path:
    """A regops config (same shape as tests/e2e/conftest.py) with one Docker host, ``build-1``."""
    blocks = "".join(
        f"  {r.name}:\n"
        f"    server: {r.server}\n"
        f"    services_hostname: namespace.example.com\n"
        f"    username: {r.username}\n"
        f"    password_env: {r.password_env}\n"
        for r in registries
    )
    path = directory / "regops.yaml"
    path.write_text(
        "registries:\n" + blocks + textwrap.dedent(f"""\
        default_registry: {registries[0].name}
        hosts: [{HOST}]
        default_host: {HOST}
        timeouts: {{push: {push_timeout}, pull: {push_timeout}, tag: 1m, login: 1m}}
        {BENCH_LIMITS}
        access:
          roles:
            admin: {{actions: ["*"]}}
            deployer: {{actions: [push, pull, tag, login], images: ["centos7-*"], tags: ["*"]}}
          grants:
            - {{role: admin, users: [U0ADMIN]}}
            - {{role: deployer, users: [{PUSH_USER}]}}
        """)
    )
    return path


def new_secrets() -> tuple[str, str]:
    """(signing secret, bot token) for one benchmark run."""
    return secrets.token_hex(16), "xoxb-bench-" + secrets.token_hex(12)


@dataclass(frozen=True)
class SignedRequest:
    timestamp: str
    signature: str
    body: str

    def http(self, host: str) -> bytes:
        """The raw HTTP/1.1 keep-alive request."""
        body = self.body.encode()
        head = (
            f"POST {SLACK_PATH} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Slack-Request-Timestamp: {self.timestamp}\r\n"
            f"X-Slack-Signature: {self.signature}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "\r\n"
        )
        return head.encode() + body


def signed_requests(count: int, text: str, signing_secret: str, response_base: str, *,
                    user: str = PUSH_USER, channel: str = "C0OPS", tag: str = "") -> list[SignedRequest]:
    """``count`` distinct slash commands (own trigger_id and response_url each), one current timestamp.

    Slack accepts a timestamp for 5 minutes, so call this right before each phase.
    """
    timestamp = int(time.time())
    run = secrets.token_hex(3)
    out = []
    for index in range(count):
        body = slash_command_body(text, user_id=user, channel_id=channel,
                                  response_url=f"{response_base}/response/{tag}{run}-{index}",
                                  trigger_id=f"{index}.{run}.{secrets.token_hex(8)}")
        headers = sign(signing_secret, body, timestamp)
        out.append(SignedRequest(headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], body))
    return out


def write_requests(path: Path, requests: Sequence[SignedRequest]) -> Path:
    """One request a line: ``timestamp<TAB>signature<TAB>body`` (form bodies hold no tab or newline)."""
    with open(path, "w") as out:
        for request in requests:
            assert "\t" not in request.body and "\n" not in request.body
            out.write(f"{request.timestamp}\t{request.signature}\t{request.body}\n")
    return path


def read_requests(path: str | Path) -> list[SignedRequest]:
    out = []
    with open(path) as source:
        for line in source:
            timestamp, signature, body = line.rstrip("\n").split("\t", 2)
            out.append(SignedRequest(timestamp, signature, body))
    return out


# ---- machine context -------------------------------------------------------------------------


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine_context() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load average (1/5/15 min)": " ".join(f"{x:.2f}" for x in load_average()),
    }


def print_context(title: str, extra: dict[str, Any] | None = None) -> None:
    print(f"== {title} ==")
    for key, value in {**machine_context(), **(extra or {})}.items():
        print(f"  {key:28s} {value}")
    sys.stdout.flush()


def cpu_busy(interval: float = 1.0) -> str:
    """How busy the whole machine's CPUs were over the last ``interval`` seconds (other people's tests
    share it), from /proc/stat: e.g. ``"37% of 2 cores"``."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values[:8]), idle

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return "?"
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    return f"{busy:.0%} of {os.cpu_count()} cores over {interval:.0f} s"


# ---- figures ---------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def print_table(title: str, rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print()
    print(title)
    print(line)
    for index, row in enumerate(cells):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + " |")
        if index == 0:
            print(line)
    print(line)
    sys.stdout.flush()


# ---- shutdown --------------------------------------------------------------------------------


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every ``finally`` stops what it started."""

    def raise_interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def log_excerpt(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


class Services(contextlib.ExitStack):
    """Starts services and stops all of them, newest first, on any exit (Ctrl-C included).

    While stopping, further Ctrl-Cs are ignored, so an impatient second Ctrl-C cannot leave
    a dockerd or registry behind.
    """

    def start(self, service: Any) -> Any:
        started = service.start() if hasattr(service, "start") else service
        self.callback(_quietly_stop, service)
        return started

    def __exit__(self, *exc: object) -> bool:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return bool(super().__exit__(*exc))
        finally:
            signal.signal(signal.SIGINT, previous)


def _quietly_stop(service: Any) -> None:
    try:
        service.stop()
    except Exception as exc:  # noqa: BLE001 - keep stopping the others
        print(f"(stopping {type(service).__name__} failed: {exc})", file=sys.stderr)


def run_benchmark(main: Callable[[], int], name: str) -> None:
    """Exit with main()'s status: 0 all targets met, 1 a target missed, 130 interrupted, 3 an error."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"\n{name} benchmark: interrupted; services stopped", file=sys.stderr)
        sys.exit(130)
    except Exception:  # noqa: BLE001 - an error is not a missed target: exit 3, not 1
        import traceback

        traceback.print_exc()
        print(f"{name} benchmark: ERROR (services stopped)", file=sys.stderr)
        sys.exit(3)
