"""Real Redis, dockerd and registry processes for tests, each on its own free port and directory.

Every service starts in its own process group and temporary directory, so two test
runs on one machine never share state, and ``stop()`` leaves nothing running.  A
service that cannot start raises :class:`RuntimeError` naming the service, the reason
and the tail of its log.
"""

from __future__ import annotations

import base64
import io
import os
import random
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import docker
import redis
import yaml

MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.oci.image.index.v1+json"
)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _find_executable(name: str) -> str | None:
    # dockerd lives in /usr/sbin, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


class Service:
    """A child process with its own temp directory, log file and process group."""

    name = "service"
    start_timeout = 20.0

    def __init__(self) -> None:
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        if self._process is not None:
            return self
        self.directory = Path(tempfile.mkdtemp(prefix=self._dir_prefix(), dir=self._dir_parent()))
        self._log_path = self.directory / f"{self.name}.log"
        try:
            argv = self._prepare()
            with open(self._log_path, "wb") as log:
                self._process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    start_new_session=True,
                )
            self._wait_ready()
        except RuntimeError as exc:
            message = self._failure_message(exc)
            self.stop()
            raise RuntimeError(message) from None
        except Exception as exc:
            message = self._failure_message(exc)
            self.stop()
            raise RuntimeError(message) from exc
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            self._terminate(process)
        directory, self.directory = self.directory, None
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
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        text = self._log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    def log_text(self) -> str:
        """The whole log so far ("" before the first start)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    # -- hooks -----------------------------------------------------------------------------

    def _prepare(self) -> list[str]:
        """Write config files into ``self.directory`` and return the command line."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """True once the service answers."""
        raise NotImplementedError

    def _dir_prefix(self) -> str:
        return f"regops-{self.name}-"

    def _dir_parent(self) -> str | None:
        return None

    # -- helpers ---------------------------------------------------------------------------

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise RuntimeError(f"process exited with status {code}")
            try:
                if self._ready():
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet; keep the last reason for the report
                last_error = exc
            time.sleep(0.1)
        detail = f" (last error: {last_error})" if last_error else ""
        raise RuntimeError(f"not ready after {self.start_timeout:.0f} s{detail}")

    def _failure_message(self, exc: BaseException) -> str:
        return f"{self.name} failed to start: {exc}\n--- last lines of its log ---\n{self.log_tail()}"

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
        # SIGTERM the leader first so dockerd can shut its containerd down cleanly, then
        # SIGKILL whatever is left in the group.
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


class RedisServer(Service):
    """``redis-server`` without persistence on a free loopback port.

    By default anyone on loopback may connect.  ``password`` sets ``requirepass``;
    ``acl_user`` (with ``password``) turns the default user off and allows only that
    ACL user; ``tls`` serves TLS only, with a self-signed certificate made for the
    run.  :attr:`url` is the REDIS_URL a client needs in each case.
    """

    name = "redis"

    def __init__(self, port: int = 0, *, password: str | None = None, acl_user: str | None = None,
                 tls: bool = False) -> None:
        """``port`` 0 picks a free one at each start; a fixed port lets a test restart it in place."""
        super().__init__()
        if acl_user is not None and not password:
            raise ValueError("an ACL user needs a password")
        for value in (password, acl_user):
            # Both go into redis.conf unquoted.
            if value is not None and (not value or any(c.isspace() or c in "\"'" for c in value)):
                raise ValueError("the password and the ACL user name must be non-empty, without spaces or quotes")
        self.fixed_port = port
        self.port = port
        self.password = password
        self.acl_user = acl_user
        self.tls = tls

    @property
    def ca_cert(self) -> Path:
        """The certificate clients must trust (``tls=True`` only)."""
        assert self.tls and self.directory is not None, "not a running TLS server"
        return self.directory / "ca.crt"

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.password:
            user = urllib.parse.quote(self.acl_user or "", safe="")
            auth = f"{user}:{urllib.parse.quote(self.password, safe='')}@"
        query = f"?ssl_ca_certs={self.ca_cert}&ssl_cert_reqs=required" if self.tls else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0{query}"

    def _prepare(self) -> list[str]:
        executable = _find_executable("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        assert self.directory is not None
        self.port = self.fixed_port or free_port()
        lines = ["bind 127.0.0.1", "save \"\"", "appendonly no", f"dir {self.directory}"]
        if self.tls:
            self._make_certificate()
            lines += ["port 0", f"tls-port {self.port}", f"tls-cert-file {self.directory / 'server.crt'}",
                      f"tls-key-file {self.directory / 'server.key'}", f"tls-ca-cert-file {self.ca_cert}",
                      "tls-auth-clients no"]
        else:
            lines.append(f"port {self.port}")
        if self.acl_user:
            lines += ["user default off", f"user {self.acl_user} on >{self.password} ~* &* +@all"]
        elif self.password:
            lines.append(f"requirepass {self.password}")
        # A config file rather than arguments: passwords stay out of the process list.
        config = self.directory / "redis.conf"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        return [executable, str(config)]

    def _make_certificate(self) -> None:
        openssl = _find_executable("openssl")
        if openssl is None:
            raise RuntimeError("openssl is not installed (apt-get install openssl)")
        assert self.directory is not None
        made = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(self.directory / "server.key"), "-out", str(self.directory / "server.crt")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if made.returncode != 0:
            raise RuntimeError(f"openssl could not make a certificate: {made.stderr.strip()[-500:]}")
        # Self-signed: the server's certificate is also the authority clients trust.
        shutil.copyfile(self.directory / "server.crt", self.ca_cert)

    def _ready(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            # Whoever took the port first would answer PING too: make sure it is our process.
            info = client.info("server")
            return self._process is not None and info.get("process_id") == self._process.pid
        finally:
            client.close()

    def client(self, decode_responses: bool = False) -> redis.Redis:
        """A client; rq needs ``decode_responses=False``, the default here."""
        return redis.Redis.from_url(self.url, decode_responses=decode_responses)


class DockerEngine(Service):
    """A private ``dockerd`` (vfs storage, no networking) listening on a unix socket."""

    name = "dockerd"
    start_timeout = 60.0


    @property
    def socket_path(self) -> str:
        assert self.directory is not None, "dockerd is not running"
        return str(self.directory / "docker.sock")

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def _dir_prefix(self) -> str:
        return "rd"

    def _dir_parent(self) -> str:
        # A unix socket path must stay under 108 bytes; $TMPDIR can be long.
        return "/tmp"

    def _prepare(self) -> list[str]:
        executable = _find_executable("dockerd")
        if executable is None:
            raise RuntimeError("dockerd is not installed (apt-get install docker.io)")
        if os.geteuid() != 0:
            raise RuntimeError("dockerd needs root; run the tests as root")
        assert self.directory is not None
        return [
            executable,
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=vfs",
            "--data-root", str(self.directory / "data"),
            "--exec-root", str(self.directory / "exec"),
            "-H", self.host,
            "--pidfile", str(self.directory / "docker.pid"),
        ]  # fmt: skip

    def _ready(self) -> bool:
        if not os.path.exists(self.socket_path):
            return False
        client = docker.APIClient(base_url=self.host, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def api(self, timeout: int = 60) -> docker.APIClient:
        return docker.APIClient(base_url=self.host, timeout=timeout)

    def stop_daemon(self, *, crash: bool = False) -> None:
        """Stop dockerd, keeping its socket path and data root: SIGTERM (``systemctl stop docker``,
        which lets running API calls such as a push finish first), or with ``crash`` SIGKILL to
        dockerd and its containerd at once, mid-call."""
        process, self._process = self._process, None
        if process is None:
            return
        if crash:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
            # A killed containerd leaves its socket and pid file; the next one must not trip on them.
            assert self.directory is not None
            shutil.rmtree(self.directory / "exec" / "containerd", ignore_errors=True)
        else:
            self._terminate(process)

    def start_daemon(self, attempts: int = 3) -> None:
        """Start dockerd again after :meth:`stop_daemon`: same socket, same images.

        dockerd gives its containerd a fixed time to come up; on a loaded machine that can
        run out, so a failed start is tried again."""
        assert self.directory is not None and self._log_path is not None, "dockerd was never started"
        for attempt in range(1, attempts + 1):
            if self.running:
                return
            with open(self._log_path, "ab") as log:
                self._process = subprocess.Popen(
                    self._prepare(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    start_new_session=True,
                )
            try:
                self._wait_ready()
                return
            except RuntimeError as exc:
                self.stop_daemon(crash=True)
                if attempt == attempts:
                    raise RuntimeError(self._failure_message(exc)) from None


class TokenAuth(Protocol):
    """What Distribution's ``auth: token`` needs to know of a token service (tests/support/token_auth.py)."""

    @property
    def realm(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def issuer(self) -> str: ...
    @property
    def certificate(self) -> Path: ...


class Registry(Service):
    """Docker Distribution v2 with htpasswd (bcrypt) auth and deletes enabled.

    ``delete_enabled=False`` turns deletes off (the registry then answers DELETE with 405);
    ``token_auth`` replaces htpasswd with Bearer tokens from that token service (the username and
    password are then the token service's to check, and :meth:`manifest_digest` cannot be used).
    ``notifications`` are the registry's notification endpoints, each a mapping as Distribution's
    ``notifications.endpoints`` takes it (``name``, ``url``, ``headers`` like
    ``{"Authorization": ["Bearer T"]}``, ``timeout``, ``threshold``, ``backoff``, ``ignore``).
    """

    name = "registry"

    def __init__(
        self, username: str = "user001@namespace.example.com", password: str | None = None, port: int = 0,
        *, delete_enabled: bool = True, token_auth: TokenAuth | None = None,
        notifications: Sequence[Mapping[str, object]] = (),
    ) -> None:
        """``port`` 0 picks a free one at each start; a fixed port lets a test restart it in place."""
        super().__init__()
        self.username = username
        self.password = password or base64.urlsafe_b64encode(os.urandom(18)).decode()
        self.fixed_port = port
        self.port = port
        self.delete_enabled = delete_enabled
        self.token_auth = token_auth
        self.notifications = [dict(endpoint) for endpoint in notifications]
        self._instance = ""

    @property
    def base_url(self) -> str:
        return f"http://{self.server}"

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _prepare(self) -> list[str]:
        executable = _find_executable("docker-registry") or _find_executable("registry")
        if executable is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        htpasswd = _find_executable("htpasswd")
        if htpasswd is None:
            raise RuntimeError("htpasswd is not installed (apt-get install apache2-utils)")
        assert self.directory is not None
        made = subprocess.run(
            [htpasswd, "-Bbn", self.username, self.password], capture_output=True, check=False
        )
        if made.returncode != 0:
            # htpasswd echoes nothing secret on failure, but keep its output out anyway.
            raise RuntimeError(f"htpasswd exited with status {made.returncode}")
        (self.directory / "htpasswd").write_bytes(made.stdout)
        storage = self.directory / "storage"
        storage.mkdir()
        self.port = self.fixed_port or free_port()
        self._instance = uuid.uuid4().hex
        config = self.directory / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n"
            "  level: info\n"
            "storage:\n"
            "  filesystem:\n"
            f"    rootdirectory: {storage}\n"
            "  delete:\n"
            f"    enabled: {'true' if self.delete_enabled else 'false'}\n"
            "http:\n"
            f"  addr: 127.0.0.1:{self.port}\n"
            "  headers:\n"
            f"    X-Regops-Instance: [{self._instance}]\n"
            + self._auth_config()
            + self._notifications_config()
        )
        return [executable, "serve", str(config)]

    def _notifications_config(self) -> str:
        if not self.notifications:
            return ""
        return yaml.safe_dump({"notifications": {"endpoints": self.notifications}}, default_flow_style=False)

    def _auth_config(self) -> str:
        assert self.directory is not None
        if self.token_auth is not None:
            token = self.token_auth
            return (
                "auth:\n"
                "  token:\n"
                f"    realm: {token.realm}\n"
                f"    service: {token.service}\n"
                f"    issuer: {token.issuer}\n"
                f"    rootcertbundle: {token.certificate}\n"
            )
        return (
            "auth:\n"
            "  htpasswd:\n"
            "    realm: regops-test\n"
            f"    path: {self.directory / 'htpasswd'}\n"
        )

    def _ready(self) -> bool:
        # The instance header proves the answer comes from this registry, not a squatter on the port.
        try:
            with urllib.request.urlopen(f"http://{self.server}/v2/", timeout=1) as response:
                headers = response.headers
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                return False
            headers = exc.headers
        return bool(headers.get("X-Regops-Instance") == self._instance)

    def _authorization(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """Docker-Content-Digest of ``repository:tag`` as the registry reports it; None if absent."""
        request = urllib.request.Request(
            f"http://{self.server}/v2/{repository}/manifests/{tag}",
            headers={"Authorization": self._authorization(), "Accept": MANIFEST_MEDIA_TYPES},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                digest = response.headers.get("Docker-Content-Digest")
                return str(digest) if digest else None
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


def build_image(
    docker_host: str,
    repository: str,
    tag: str = "latest",
    layers: int = 2,
    layer_size: int = 64 * 1024,
    seed: int | str | None = None,
    api_factory: Callable[[str], docker.APIClient] | None = None,
) -> str:
    """Build ``repository:tag`` FROM scratch with ``layers`` COPY layers of random bytes.

    Each seed gives different bytes, so images built with different seeds share no
    layers (a push then really uploads them).  Returns the image id.
    """
    rng = random.Random() if seed is None else random.Random(repr(seed))
    dockerfile = ["FROM scratch"]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))

        for index in range(layers):
            name = f"layer{index}.bin"
            add(name, rng.randbytes(layer_size))
            dockerfile.append(f"COPY {name} /{name}")
        add("Dockerfile", ("\n".join(dockerfile) + "\n").encode())
    context.seek(0)

    api = api_factory(docker_host) if api_factory else docker.APIClient(base_url=docker_host, timeout=120)
    try:
        image_id: str | None = None
        errors: list[str] = []
        for line in api.build(
            fileobj=context, custom_context=True, tag=f"{repository}:{tag}", rm=True, decode=True
        ):
            if "error" in line or "errorDetail" in line:
                errors.append(str(line.get("error") or line.get("errorDetail")))
            aux = line.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = str(aux["ID"])
        if errors:
            raise RuntimeError(f"building {repository}:{tag} failed: {'; '.join(errors)}")
        if image_id is None:
            image_id = str(api.inspect_image(f"{repository}:{tag}")["Id"])
        return image_id
    finally:
        api.close()
