"""The gunicorn worker class `regops serve` runs: whole requests first, then a thread.

gunicorn's gthread worker hands a connection to a request thread as soon as its first bytes arrive,
and the thread then blocks reading the rest: twenty clients that trickle a header line a second hold
every thread. This worker reads each request on an asyncio event loop with tornado's HTTP/1.1 server
(``tornado.httpserver``, not hand-written parsing), under a *total* deadline for the headers and another
for the body, and only a request that has fully arrived goes to the thread pool that runs the WSGI
app. A slow or silent connection costs a socket and a few kB, never a thread, and is closed when its
deadline passes (at most ``HEADER_TIMEOUT + BODY_TIMEOUT`` after it opened).

gunicorn stays the process manager: it binds the sockets, forks the workers, calls the app loader in
each worker after the fork (so :class:`bot.http.server.BotProcess` connects nothing before it), writes
its own log lines through the process's logging, and turns SIGTERM into a graceful stop: this worker
stops accepting, lets requests in progress finish (at most ``graceful_timeout``), then returns, and
gunicorn's ``worker_exit`` hook drains the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gunicorn.workers.base import Worker
from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.httpserver import HTTPServer
from tornado.wsgi import WSGIContainer

from bot.http.guard import MAX_BODY_BYTES  # the largest body buffered at all: 413 unread above it

HEADER_TIMEOUT = 5.0
"""Seconds a connection has to deliver a request's line and headers, in total (not per byte); the same
bound closes a kept-alive connection that sends no next request."""
BODY_TIMEOUT = 5.0
"""Seconds, in total, for the body once the headers are in."""
MAX_HEADER_BYTES = 64 * 1024

log = logging.getLogger(__name__)
access_log = logging.getLogger("gunicorn.access")


class _Container(WSGIContainer):
    """tornado's WSGI bridge (``environ`` from the buffered request), with the app called *and* its answer
    collected in one trip to the thread pool (tornado's own makes one per chunk), 500 when the app raises,
    a count of requests in progress for the graceful stop, and gunicorn-style access lines only when
    ``--access-log`` is on."""

    def __init__(self, app: Callable[..., Any], executor: ThreadPoolExecutor, access: bool) -> None:
        super().__init__(app, executor=executor)
        self._access = access
        self.in_progress = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def environ(self, request: httputil.HTTPServerRequest) -> dict[str, Any]:
        request_environ = super().environ(request)
        if "CONTENT_LENGTH" not in request_environ and request.body:  # a chunked body, already whole
            request_environ["CONTENT_LENGTH"] = str(len(request.body))
        return request_environ

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        answer: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            answer["status"], answer["headers"] = status, headers
            return chunks.append

        iterable = self.wsgi_application(environ, start_response)
        try:
            chunks.extend(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        if not answer:
            raise RuntimeError("the WSGI app did not call start_response")
        return answer["status"], answer["headers"], b"".join(chunks)

    def start(self, request: httputil.HTTPServerRequest) -> None:
        """Handle ``request`` in a task of the running loop (kept referenced until it is done)."""
        task = asyncio.get_running_loop().create_task(self.handle_request(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle_request(self, request: httputil.HTTPServerRequest) -> None:
        connection = request.connection
        assert connection is not None
        self.in_progress += 1
        try:
            environ = self.environ(request)
            try:
                status, headers, body = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._call, environ)
                code_text, reason = status.split(" ", 1)
                code = int(code_text)
            except Exception:
                log.exception("request %s %s: the application failed", request.method, request.path)
                code, reason, body = 500, "Internal Server Error", b'{"error": "internal error"}'
                headers = [("Content-Type", "application/json"), ("Connection", "close")]
            names = {name.lower() for name, _ in headers}
            if code != 304 and "content-length" not in names:
                headers.append(("Content-Length", str(len(body))))
            response_headers = httputil.HTTPHeaders()
            for name, value in headers:
                response_headers.add(name, value)
            try:
                connection.write_headers(httputil.ResponseStartLine("HTTP/1.1", code, reason), response_headers,
                                         chunk=None if request.method == "HEAD" else body)
                connection.finish()
            except httputil.HTTPOutputError as exc:  # e.g. a Content-Length the body does not match
                log.error("request %s %s: the answer could not be sent (%s)", request.method, request.path, exc)
                if isinstance(connection, HTTP1Connection):
                    connection.close()
            self._log(code, request)
        finally:
            self.in_progress -= 1

    def _log(self, status_code: int, request: httputil.HTTPServerRequest) -> None:
        if self._access:
            access_log.info('%s "%s %s %s" %d %.1fms', request.remote_ip, request.method, request.uri,
                            request.version, status_code, 1000.0 * request.request_time())


class _TooLarge(httputil.HTTPMessageDelegate):
    """Answers 413 and closes, from the headers alone: the body is never read."""

    def __init__(self, connection: httputil.HTTPConnection) -> None:
        self._connection = connection

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        return self._refuse()

    async def _refuse(self) -> None:
        body = b'{"error": "request body too large"}'
        await self._connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 413, "Payload Too Large"),
            httputil.HTTPHeaders({"Content-Type": "application/json", "Content-Length": str(len(body)),
                                  "Connection": "close"}), chunk=body)
        # Finished before the request was read: tornado closes the connection now, unread.
        self._connection.finish()


class _Limited(httputil.HTTPMessageDelegate):
    """Routes one request: to :class:`_TooLarge` when its Content-Length is over the limit, else to the app."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection) -> None:
        self._inner = inner
        self._connection = connection
        self._refused = False

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        length = headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            self._refused = True
            return _TooLarge(self._connection).headers_received(start_line, headers)
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return None if self._refused else self._inner.data_received(chunk)

    def finish(self) -> None:
        if not self._refused:
            self._inner.finish()

    def on_connection_close(self) -> None:
        self._inner.on_connection_close()


class _Buffered(httputil.HTTPMessageDelegate):
    """One request, collected whole, then handed to the container: tornado's own adapter without its parsing
    of form bodies into ``request.body_arguments`` (the WSGI app reads the raw body) and without the extra
    trip through the loop's callback queue."""

    def __init__(self, container: _Container, connection: httputil.HTTPConnection) -> None:
        self._container = container
        self._connection = connection
        self._request: httputil.HTTPServerRequest | None = None
        self._chunks: list[bytes] = []

    def headers_received(self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self._request = httputil.HTTPServerRequest(connection=self._connection, start_line=start_line,
                                                   headers=headers)
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        self._chunks.append(chunk)
        return None

    def finish(self) -> None:
        request = self._request
        assert request is not None
        request.body = b"".join(self._chunks)
        self._chunks = []
        self._container.start(request)

    def on_connection_close(self) -> None:
        self._chunks = []


class _Server(HTTPServer):
    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> \
            httputil.HTTPMessageDelegate:
        container = self.request_callback
        assert isinstance(container, _Container)
        return _Limited(_Buffered(container, request_conn), request_conn)


class BufferingWorker(Worker):  # type: ignore[misc]
    """gunicorn worker: tornado's HTTP server on asyncio in front, the WSGI app on ``threads`` threads."""

    def init_process(self) -> None:
        # Quiet tornado's per-connection notes ("Malformed HTTP message", "Timeout reading body"): a
        # client can make as many as it likes, and the answer (400, a closed connection) says it all.
        logging.getLogger("tornado.general").setLevel(logging.WARNING)
        # Access lines are ours (_Container._log), in gunicorn's logger; tornado's own would repeat them.
        logging.getLogger("tornado.access").setLevel(logging.CRITICAL + 1)
        super().init_process()

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        executor = ThreadPoolExecutor(max(1, self.cfg.threads), thread_name_prefix="regops-http")
        container = _Container(self.wsgi, executor, access=bool(self.cfg.accesslog))
        server = _Server(container, xheaders=False, no_keep_alive=self.cfg.keepalive <= 0,
                         idle_connection_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT,
                         max_body_size=MAX_BODY_BYTES, max_header_size=MAX_HEADER_BYTES)
        for sock in self.sockets:
            sock.setblocking(False)
            server.add_socket(sock.sock if hasattr(sock, "sock") else sock)
        try:
            while self.alive:
                self.notify()
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                await asyncio.sleep(0.5)
        finally:
            server.stop()  # no new connections; requests already read still get their answer
            deadline = time.monotonic() + max(1.0, float(self.cfg.graceful_timeout))
            while container.in_progress and time.monotonic() < deadline:
                self.notify()
                await asyncio.sleep(0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.close_all_connections(), 2.0)
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
            log.debug("worker %d: HTTP server stopped (threads alive: %d)", os.getpid(), threading.active_count())
