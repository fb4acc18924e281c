"""A token service for Distribution's ``auth: token``, run in a thread of the test process.

It does what Docker Hub's, Harbor's or GitLab's token endpoints do, small: a GET of ``/token``
with ``service`` and one or more ``scope`` parameters and Basic credentials answers with a JSON
``token`` (and ``access_token``): an RS256 JWT granting the scopes asked for.  The JWT's header
names the signing key by its libtrust key ID in ``kid`` (the registry finds the key among
its ``rootcertbundle``'s certificates), or carries the certificate itself in ``x5c`` (the registry
verifies it against that bundle), as :attr:`TokenService.signing` says; then the registry checks
the signature with that key.

The key pair and certificate are made with ``openssl`` (as :class:`~tests.support.services.RedisServer`'s
TLS certificate is), per service instance, in its own temporary directory; tokens are signed by
``openssl dgst -sha256 -sign``.  Every token request is recorded in :attr:`TokenService.requests`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenRequest:
    """One GET of the token endpoint: the scopes it asked for and whether its credentials were good."""

    service: str
    scopes: tuple[str, ...]
    authorized: bool


class TokenService:
    """The token endpoint; :attr:`realm`, :attr:`service`, :attr:`issuer`, :attr:`certificate` configure a registry."""

    def __init__(self, username: str, password: str, *, expires_in: int = 300, field: str = "token") -> None:
        self.username = username
        self.password = password
        self.expires_in = expires_in
        self.field = field
        """``token`` or ``access_token``: which field of the answer holds the token."""
        self.signing = "kid"
        """How a token names its key: ``kid`` (the key's libtrust ID, looked up in the registry's
        rootcertbundle) or ``x5c`` (the certificate itself, verified against the bundle on every call)."""
        self.read_only: set[str] = set()
        """Repositories on which tokens grant ``pull`` only, whatever is asked."""
        self.service = "regops-test-registry"
        self.issuer = "regops-test-issuer"
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._directory: Path | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._x5c = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RuntimeError("openssl is not installed (apt-get install openssl)")
        self._directory = Path(tempfile.mkdtemp(prefix="regops-token-"))
        made = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=regops-test-issuer",
             "-keyout", str(self.key), "-out", str(self.certificate)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if made.returncode != 0:
            self.stop()
            raise RuntimeError(f"openssl could not make the token signing key: {made.stderr.strip()[-500:]}")
        pem = self.certificate.read_text()
        self._x5c = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
        self._kid = self._key_id(openssl)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-service", daemon=True)
        self._thread.start()
        return self

    def _key_id(self, openssl: str) -> str:
        """libtrust's key ID: the SHA-256 of the DER public key, its first 240 bits in base32, 4 by 4 with ``:``."""
        public = subprocess.run([openssl, "x509", "-in", str(self.certificate), "-noout", "-pubkey"],
                                capture_output=True, check=True).stdout
        der = subprocess.run([openssl, "pkey", "-pubin", "-outform", "DER"], input=public,
                             capture_output=True, check=True).stdout
        encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
        return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- what a registry is configured with --------------------------------------------------

    @property
    def realm(self) -> str:
        assert self._server is not None, "the token service is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    @property
    def key(self) -> Path:
        assert self._directory is not None
        return self._directory / "signing.key"

    @property
    def certificate(self) -> Path:
        assert self._directory is not None
        return self._directory / "signing.crt"

    # -- tokens ----------------------------------------------------------------------------

    def issue(self, scopes: list[str] | tuple[str, ...], subject: str | None = None) -> str:
        """A signed JWT granting ``scopes`` (``repository:NAME:pull,push`` each)."""
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a and (a == "pull" or name not in self.read_only)]
            access.append({"type": kind, "name": name, "actions": granted})
        header: dict[str, object] = {"typ": "JWT", "alg": "RS256"}
        if self.signing == "x5c":
            header["x5c"] = [self._x5c]
        else:
            header["kid"] = self._kid
        claims = {
            "iss": self.issuer, "sub": subject or self.username, "aud": self.service, "exp": now + self.expires_in,
            "nbf": now - 10, "iat": now - 10, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signed = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
            capture_output=True, check=True,
        )  # fmt: skip
        return f"{signing_input}.{_b64url(signed.stdout)}"

    def scope_sets(self) -> list[tuple[str, ...]]:
        """The scopes of every authorized token request, in order."""
        with self._lock:
            return [request.scopes for request in self.requests if request.authorized]

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                scopes = tuple(sorted(query.get("scope", [])))
                expected = "Basic " + base64.b64encode(f"{service.username}:{service.password}".encode()).decode()
                authorized = self.headers.get("Authorization") == expected
                service._record(TokenRequest(query.get("service", [""])[0], scopes, authorized))
                if url.path != "/token":
                    self._answer(404, {"errors": [{"code": "NOT_FOUND"}]})
                elif not authorized:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                else:
                    token = service.issue(scopes)
                    self._answer(200, {service.field: token, "expires_in": service.expires_in})

            def _answer(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
