"""Open-loop HTTP load: requests at a fixed arrival rate, latency counted from each SCHEDULED time.

    python -m tests.benchmarks.openloop --url http://127.0.0.1:PORT --requests FILE \\
        --rate 200 --duration 30 --expect Queued [--json OUT]

Request ``i`` is due at ``start + i / rate``.  It is sent at that moment on an idle
keep-alive connection, or on a new one when every connection is busy (the pool grows,
so no request ever waits behind another one's response).  Its latency runs from the
scheduled time to the last byte of the response, so any delay in this client (event
loop late, connection set-up) or in the server (accept queue, thread pool, GIL, Redis)
counts.  An error is a failed connection, a timeout, a status other than 200, or a body
without the expected text.

Run it as its own process (``ack.py`` does), so nothing else in the benchmark shares its
event loop or GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import urllib.parse
from dataclasses import dataclass, field

from tests.benchmarks.common import percentile, read_requests

IDLE_LIMIT = 4.0
"""Seconds a pooled connection may sit idle before it is dropped (serve closes an idle one after 5 s, bot/http/worker.py HEADER_TIMEOUT)."""


@dataclass
class Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    last_used: float


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, from scheduled time
    send_lag: list[float] = field(default_factory=list)  # seconds the send started after its schedule
    errors: dict[str, int] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)
    opened: int = 0
    max_in_flight: int = 0

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_examples) < 5:
            self.error_examples.append(f"{kind}: {detail[:300]}")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    keep_alive = headers.get("connection", "").lower() != "close"
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
        keep_alive = False
    return status, body, keep_alive


class Pool:
    def __init__(self, host: str, port: int, result: Result) -> None:
        self.host = host
        self.port = port
        self.idle: list[Conn] = []  # LIFO: the most recently used first, stale ones sink
        self.result = result

    async def open(self) -> Conn:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.result.opened += 1
        return Conn(reader, writer, time.monotonic())

    def take(self) -> Conn | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if now - conn.last_used < IDLE_LIMIT and not conn.reader.at_eof():
                return conn
            conn.writer.close()
        return None

    def give(self, conn: Conn) -> None:
        conn.last_used = time.monotonic()
        self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.writer.close()
        self.idle.clear()


async def run(url: str, payloads: list[bytes], rate: float, expect: bytes, timeout: float,
              warm_connections: int) -> tuple[Result, float]:
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    result = Result()
    pool = Pool(host, port, result)
    loop = asyncio.get_running_loop()
    in_flight = 0

    for _ in range(warm_connections):
        pool.give(await pool.open())

    async def one(payload: bytes, scheduled: float) -> None:
        nonlocal in_flight
        in_flight += 1
        result.max_in_flight = max(result.max_in_flight, in_flight)
        result.send_lag.append(loop.time() - scheduled)
        conn = None
        try:
            async with asyncio.timeout(timeout):
                conn = pool.take() or await pool.open()
                conn.writer.write(payload)
                status, body, keep_alive = await read_response(conn.reader)
            finished = loop.time()
            if status != 200:
                result.error(f"status {status}", body.decode(errors="replace"))
            elif expect not in body:
                result.error("unexpected body", body.decode(errors="replace"))
            else:
                result.latencies.append(finished - scheduled)
            if keep_alive:
                pool.give(conn)
            else:
                conn.writer.close()
        except TimeoutError:
            result.error("timeout", f"no response within {timeout} s")
            if conn is not None:
                conn.writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            result.error("connection", f"{type(exc).__name__}: {exc}")
            if conn is not None:
                conn.writer.close()
        finally:
            in_flight -= 1

    tasks = []
    start = loop.time() + 0.2
    for index, payload in enumerate(payloads):
        scheduled = start + index / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(payload, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    pool.close()
    return result, elapsed


def summarize(result: Result, elapsed: float, sent: int, rate: float) -> dict:
    lat = sorted(result.latencies)
    lag = sorted(result.send_lag)

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    return {
        "rate": rate,
        "sent": sent,
        "ok": len(lat),
        "errors": sum(result.errors.values()),
        "error_kinds": result.errors,
        "error_examples": result.error_examples,
        "elapsed_s": round(elapsed, 3),
        "achieved_rate": round(sent / elapsed, 1) if elapsed else 0,
        "p50_ms": ms(percentile(lat, 0.50)) if lat else None,
        "p90_ms": ms(percentile(lat, 0.90)) if lat else None,
        "p99_ms": ms(percentile(lat, 0.99)) if lat else None,
        "p999_ms": ms(percentile(lat, 0.999)) if lat else None,
        "max_ms": ms(lat[-1]) if lat else None,
        "mean_ms": ms(sum(lat) / len(lat)) if lat else None,
        "send_lag_p99_ms": ms(percentile(lag, 0.99)) if lag else None,
        "send_lag_max_ms": ms(lag[-1]) if lag else None,
        "connections_opened": result.opened,
        "max_in_flight": result.max_in_flight,
    }


def write_raw(path: str, requests: list[bytes]) -> None:
    """The file ``--raw`` reads: each whole request as a JSON string (latin-1), one a line."""
    with open(path, "w") as out:
        out.writelines(json.dumps(request.decode("latin-1")) + "\n" for request in requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="base URL of regops serve")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--requests", help="file of signed requests (common.write_requests)")
    source.add_argument("--raw", help="file of whole HTTP/1.1 requests, one JSON string a line (write_raw)")
    parser.add_argument("--rate", type=float, default=200.0, help="arrivals per second (default 200)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--expect", default="Queued", help="text every 200 body must contain")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, seconds")
    parser.add_argument("--warm-connections", type=int, default=8, help="connections opened before start")
    parser.add_argument("--json", help="write the summary here too")
    args = parser.parse_args(argv)

    count = int(args.rate * args.duration)
    host = urllib.parse.urlsplit(args.url).netloc
    if args.raw:
        with open(args.raw) as source_file:
            requests: list[bytes] = [json.loads(line).encode("latin-1") for line in source_file]
    else:
        requests = [request.http(host) for request in read_requests(args.requests)]
    if len(requests) < count:
        print(f"openloop: {len(requests)} requests in the file, {count} needed; they will repeat",
              file=sys.stderr)
    payloads = [requests[i % len(requests)] for i in range(count)]
    gc.collect()
    gc.freeze()
    gc.disable()  # a collection pause would count against the server
    result, elapsed = asyncio.run(run(args.url, payloads, args.rate, args.expect.encode(), args.timeout,
                                      args.warm_connections))
    summary = summarize(result, elapsed, count, args.rate)
    text = json.dumps(summary)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
