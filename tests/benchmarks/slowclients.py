"""Slow clients against a real HTTP server: many connections that never finish a request, plus timed probes.

Used by the slow-client benchmark (``run.sh slow``) and by tests/e2e/test_slow_clients.py; the slow
connections run in a process of their own (``python -m tests.benchmarks.slowclients``).  Three kinds
of slow connection, round robin:

* ``trickle``: a request line, then one header line per second, never the blank line that ends them;
* ``silent``: a request line, then nothing;
* ``body``: whole headers announcing a 4 kB body, then one byte of it per second.

While they are open, probes (each on a fresh connection, as Slack opens them) are sent every
``probe_interval`` seconds and timed from the moment they were due.  Every slow connection records when
the server closed it (EOF or reset seen by the reader, or a failed write).  Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

KINDS = ("trickle", "silent", "body")


@dataclass(frozen=True)
class Probe:
    """One request a probe sends: raw bytes of the whole request, and what its answer must contain."""

    name: str
    build: Callable[[], bytes]
    expect_status: int = 200
    expect_text: str = ""


@dataclass
class ProbeResult:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    slowest: list[tuple[float, float]] = field(default_factory=list)
    """(seconds into the run, latency ms) of the slowest answers, for the report."""

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class SlowResult:
    opened: int
    """Slow connections opened in all (each client opens a new one when the server closes its last, until
    the probes end)."""
    closed_after_s: dict[str, list[float]]
    """Per kind: seconds from opening until the server closed each connection that it closed."""
    still_open: dict[str, int]
    """Per kind: connections the server had not closed when the run ended."""
    probes: dict[str, ProbeResult]
    duration_s: float


def request_bytes(method: str, path: str, host: str, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _slow_connection(host: str, port: int, kind: str, index: int, stop: asyncio.Event,
                           closed: dict[str, list[float]], still_open: dict[str, int]) -> bool:
    """One slow connection until the server closes it; False if it could not even be opened."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (OSError, TimeoutError):
        return False
    opened = time.monotonic()
    loop = asyncio.get_running_loop()
    eof: asyncio.Future[float] = loop.create_future()

    async def watch() -> None:
        with contextlib.suppress(OSError):
            while await reader.read(4096):
                pass  # a 408/400 the server sends before closing is fine: it is the close that counts
        if not eof.done():
            eof.set_result(time.monotonic())

    watcher = asyncio.create_task(watch())
    try:
        if kind == "body":
            head = (f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded"
                    f"\r\nContent-Length: 4096\r\nX-Slow: {index}\r\n\r\n")
            writer.write(head.encode())
        else:
            writer.write(b"POST /slack/events HTTP/1.1\r\n")
        line = 0
        while not stop.is_set() and not eof.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(eof), 1.0)
            if eof.done() or stop.is_set():
                break
            try:
                if kind == "trickle":
                    line += 1
                    writer.write(f"X-Trickle-{line}: {index}\r\n".encode())
                elif kind == "body":
                    writer.write(b"a")
                await writer.drain()
            except OSError:
                if not eof.done():
                    eof.set_result(time.monotonic())
        if eof.done():
            closed[kind].append(eof.result() - opened)
        else:
            still_open[kind] += 1
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return True


async def _slow_client(host: str, port: int, kind: str, index: int, stop: asyncio.Event, reconnect: asyncio.Event,
                       closed: dict[str, list[float]], still_open: dict[str, int]) -> int:
    """A slow connection, opened again each time the server closes it while ``reconnect`` is set (so that
    the count stays up during the probes, as an attacker would keep it); returns how many it opened."""
    opened = 0
    while not stop.is_set():
        if await _slow_connection(host, port, kind, index, stop, closed, still_open):
            opened += 1
        else:
            await asyncio.sleep(0.1)
        if not reconnect.is_set():
            break
    return opened


async def _send_probe(host: str, port: int, probe: Probe, result: ProbeResult, due: float,
                      timeout: float) -> None:
    data = probe.build()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(data)
                await writer.drain()
                raw = await reader.read()  # Connection: close — the server ends the answer by closing
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        result.failures.append(f"{type(exc).__name__} after {time.monotonic() - due:.2f} s")
        return
    elapsed_ms = (time.monotonic() - due) * 1000
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if status != probe.expect_status or probe.expect_text.encode() not in body:
        result.failures.append(f"{status_line!r} {body[:200]!r}")
        return
    result.latencies_ms.append(elapsed_ms)
    result.slowest.append((due, elapsed_ms))
    result.slowest.sort(key=lambda sample: -sample[1])
    del result.slowest[5:]


async def _probe_loop(host: str, port: int, probe: Probe, result: ProbeResult, interval: float, until: float,
                      timeout: float) -> None:
    tasks = []
    due = time.monotonic()
    while due < until:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_send_probe(host, port, probe, result, due, timeout)))
        due += interval
    await asyncio.gather(*tasks)


async def hold(host: str, port: int, *, connections: int, hold_s: float, ramp: float = 5.0, linger: float = 0.0,
               kinds: tuple[str, ...] = KINDS, ready: Callable[[], None] | None = None) -> dict[str, Any]:
    """Keep ``connections`` slow connections open (opened evenly over ``ramp`` s, reopened when the server
    closes them) for ``hold_s`` s, then stop reopening and wait up to ``linger`` s for the server to close
    the last ones. Returns what was seen (the fields of :class:`SlowResult` but the probes)."""
    stop = asyncio.Event()
    reconnect = asyncio.Event()
    reconnect.set()
    closed: dict[str, list[float]] = {kind: [] for kind in kinds}
    still_open = dict.fromkeys(kinds, 0)
    slow = []
    # Opened evenly over about the server's deadline, so that the closes and reopenings happen all along
    # the run, not in one wave of 500.
    for index in range(connections):
        slow.append(asyncio.create_task(_slow_client(host, port, kinds[index % len(kinds)], index, stop, reconnect,
                                                     closed, still_open)))
        await asyncio.sleep(ramp / connections)
    await asyncio.sleep(0.5)
    if ready is not None:
        ready()
    await asyncio.sleep(hold_s)
    reconnect.clear()
    await asyncio.wait(slow, timeout=linger or None)
    stop.set()
    opened = sum(await asyncio.gather(*slow))
    return {"opened": opened, "closed_after_s": closed, "still_open": still_open}


async def probe(host: str, port: int, probes: list[Probe], *, duration: float, interval: float = 0.05,
                timeout: float = 5.0) -> dict[str, ProbeResult]:
    until = time.monotonic() + duration
    results = {p.name: ProbeResult(p.name) for p in probes}
    await asyncio.gather(*(_probe_loop(host, port, p, results[p.name], interval, until, timeout) for p in probes))
    return results


def run(host: str, port: int, *, connections: int, probes: list[Probe], duration: float, probe_interval: float = 0.05,
        probe_timeout: float = 5.0, linger: float = 0.0, ramp: float = 5.0) -> SlowResult:
    """The slow connections in a process of their own (its event loop busy with 500 sockets would delay
    the probes' clocks), the probes here once they are all open; both bounded in time."""
    started = time.monotonic()
    argv = [sys.executable, "-m", "tests.benchmarks.slowclients", "--host", host, "--port", str(port),
            "--connections", str(connections), "--hold", str(duration), "--ramp", str(ramp), "--linger", str(linger)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env) as attacker:
        try:
            assert attacker.stdout is not None
            line = attacker.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"slow-client process did not start: {line!r}")
            results = asyncio.run(probe(host, port, probes, duration=duration, interval=probe_interval,
                                        timeout=probe_timeout))
            out, _ = attacker.communicate(timeout=ramp + duration + linger + 60)
        finally:
            if attacker.poll() is None:
                attacker.kill()
    if attacker.returncode != 0:
        raise RuntimeError(f"slow-client process failed ({attacker.returncode})")
    seen = json.loads(out)
    return SlowResult(opened=seen["opened"], closed_after_s=seen["closed_after_s"], still_open=seen["still_open"],
                      probes=results, duration_s=time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hold slow connections open against a server (loopback only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--hold", type=float, default=10.0, help="seconds to keep them open once all are")
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--linger", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("loopback only")

    def ready() -> None:
        print("ready", flush=True)

    seen = asyncio.run(hold(args.host, args.port, connections=args.connections, hold_s=args.hold, ramp=args.ramp,
                            linger=args.linger, ready=ready))
    print(json.dumps(seen), flush=True)
    return 0


def healthz_probe(host: str = "127.0.0.1") -> Probe:
    return Probe("healthz", lambda: request_bytes("GET", "/healthz", host), 200, '"ok"')


def command_probe(signing_secret: str, response_url: str, *, text: str, user: str, expect: str,
                  host: str = "127.0.0.1") -> Probe:
    """A slash command signed as Slack signs it, with a fresh timestamp and trigger_id each time."""
    from tests.support.slack_standin import sign, slash_command_body

    def build() -> bytes:
        body = slash_command_body(text, user_id=user, response_url=response_url)
        return request_bytes("POST", "/slack/events", host, sign(signing_secret, body), body.encode())

    return Probe("signed command", build, 200, expect)


def percentiles_line(result: ProbeResult) -> str:
    q = result.percentile
    if not result.latencies_ms:
        return f"{result.name}: no answers ({len(result.failures)} failures)"
    return (f"{result.name}: {len(result.latencies_ms)} answered, {len(result.failures)} failed; "
            f"p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, p99 {q(0.99):.1f} ms, max {q(1.0):.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
