"""A pass-through HTTP proxy in front of a real registry, for behaviour Distribution 2.8 does not have.

* ``page_tags``: answers ``GET /v2/NAME/tags/list?n=&last=`` page by page with a
  ``Link: <…>; rel="next"`` header, as the OCI distribution spec, Distribution 3, Harbor and
  GHCR do (Distribution 2.8.2 ignores ``n`` and sends every tag at once).  The tags come from
  the registry behind, in lexical order.
* ``tamper_manifests``: serves manifests with one byte added, the registry's own
  ``Docker-Content-Digest`` left as it was (a corrupting cache or a man in the middle).
* ``refuse_mounts``: passes ``POST …/blobs/uploads/?mount=…&from=…`` on without the mount, so
  the registry answers 202 with an upload session, as registries that will not mount do.

Everything else (credentials and challenges included) goes through unchanged; bodies are read whole
(the proxy is for small images only).  Every request
path is recorded in :attr:`RegistryProxy.paths`.
"""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import requests

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "date",
               "server"}


class RegistryProxy:
    def __init__(self, upstream: str, *, page_tags: bool = False, tamper_manifests: bool = False,
                 refuse_mounts: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.page_tags = page_tags
        self.tamper_manifests = tamper_manifests
        self.refuse_mounts = refuse_mounts
        self.paths: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the proxy is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="registry-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                proxy.paths.append(self.path)
                url = urllib.parse.urlsplit(self.path)
                body = self._body()
                # Host passed on, as reverse proxies do: the registry's Location headers then point here.
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("content-length", "transfer-encoding")}
                if proxy.page_tags and self.command == "GET" and url.path.endswith("/tags/list"):
                    self._tags(url, headers)
                    return
                path = self.path
                if proxy.refuse_mounts and self.command == "POST" and "mount=" in url.query:
                    path = url.path
                answer = requests.request(self.command, proxy.upstream + path, headers=headers, data=body,
                                          allow_redirects=False, timeout=30)
                content = answer.content
                if proxy.tamper_manifests and "/manifests/" in url.path and self.command == "GET" and answer.ok:
                    content += b" "
                self._answer(answer.status_code, answer.headers, content)

            def _body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _tags(self, url: urllib.parse.SplitResult, headers: dict[str, str]) -> None:
                query = urllib.parse.parse_qs(url.query)
                answer = requests.get(proxy.upstream + url.path, headers=headers, timeout=30)
                if not answer.ok:
                    self._answer(answer.status_code, answer.headers, answer.content)
                    return
                document = answer.json()
                tags = sorted(document.get("tags") or [])
                last = query.get("last", [""])[0]
                tags = [tag for tag in tags if tag > last]
                size = int(query.get("n", ["0"])[0] or 0) or len(tags)
                page, more = tags[:size], len(tags) > size
                extra = {"Content-Type": "application/json"}
                if more:
                    next_query = urllib.parse.urlencode({"n": size, "last": page[-1]})
                    extra["Link"] = f'<{url.path}?{next_query}>; rel="next"'
                data = requests.compat.json.dumps({"name": document.get("name"), "tags": page}).encode()
                self._answer(200, extra, data)

            def _answer(self, status: int, headers: object, content: bytes) -> None:
                self.send_response(status)
                for key, value in dict(headers).items():  # type: ignore[call-overload]
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
