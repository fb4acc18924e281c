"""regops' own processes for end-to-end tests: `regops serve` and `regops worker`, as real subprocesses."""

from __future__ import annotations

import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from tests.support.services import Service, free_port


def descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid`` (rq's work horse runs in a process group of its own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


class RegopsProcess(Service):
    """A regops command run as ``python -m bot ...`` with its own environment."""

    start_timeout = 30.0

    def __init__(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        super().__init__()
        self.name = name
        self._args = args
        self._env = dict(env)

    def _prepare(self) -> list[str]:
        # `env` layers our variables over the inherited environment for the child alone.
        return ["env", *(f"{k}={v}" for k, v in self._env.items()), sys.executable, "-m", "bot", *self._args]

    def _ready(self) -> bool:
        return True

    def signal_all(self, signum: int) -> None:
        """Signal the process group and every descendant, as systemd's control-group kill does."""
        if self._process is None:
            return
        pids = descendants(self._process.pid)
        os.killpg(self._process.pid, signum)
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the process and everything below it, as an OOM kill or a lost host would; keeps the log."""
        if self._process is not None:
            self.signal_all(signal.SIGKILL)
            self._process.wait(timeout=10)

    def log_text(self) -> str:
        path = self._log_path
        return Path(path).read_text(errors="replace") if path and Path(path).exists() else ""


class ServeProcess(RegopsProcess):
    """`regops serve` on a free port; ready when /healthz answers 200."""

    def __init__(self, env: Mapping[str, str], config: str, workers: int = 1, threads: int = 4,
                 extra: list[str] | None = None) -> None:
        self.port = free_port()
        super().__init__("serve", ["--config", config, "serve", "--bind", "127.0.0.1", "--port", str(self.port),
                                   "--workers", str(workers), "--threads", str(threads), *(extra or [])], env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return True  # it answers (503 while Redis is away is still "up")


class WorkerProcess(RegopsProcess):
    """`regops worker --host NAME`; ready at once (rq registers itself when it starts listening)."""

    def __init__(self, env: Mapping[str, str], config: str, host: str) -> None:
        super().__init__(f"worker-{host}", ["--config", config, "worker", "--host", host], env)
