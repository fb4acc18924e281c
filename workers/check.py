"""Live checks of a Docker host's side: the engine answers, and every configured registry login works.

``python -m workers.check [--config PATH]`` prints one JSON object per check on standard
output — ``{"check": NAME, "ok": BOOL, "detail": TEXT}`` — for ``regops check-config
--live``, which runs it so that the bot package itself never talks to Docker.  Details
are user-safe sentences: never a password, never a raw exception.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence

import docker

from workers import docker_ops
from workers.credentials import CredentialStore
from workers.errors import WorkerError
from workers.kernel.config import load_config, resolve_config_path
from workers.kernel.errors import ConfigError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def run_checks(config: str | None, environ: Mapping[str, str]) -> Iterator[dict[str, object]]:
    docker_host = environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    try:
        api = docker_ops.connect(lambda: docker.APIClient(base_url=docker_host, timeout=30))
    except WorkerError as exc:
        yield {"check": "docker engine", "ok": False, "detail": f"{exc.user_message} ({docker_host})"}
        return
    try:
        version = api.version().get("Version", "?")
        yield {"check": "docker engine", "ok": True, "detail": f"Docker {version} at {docker_host}"}
        store = CredentialStore(load_config(resolve_config_path(config, environ)).registries, environ)
        for name in store.names():
            check = f"registry {name}"
            try:
                creds = store.get(name)
                docker_ops.login(api, creds)
            except WorkerError as exc:
                yield {"check": check, "ok": False, "detail": exc.user_message}
                continue
            yield {"check": check, "ok": True, "detail": f"logged in to {creds.server} as {creds.username}"}
    except ConfigError as exc:
        yield {"check": "registries", "ok": False, "detail": exc.summary()}
    finally:
        api.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.check", description=__doc__)
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    ok = True
    for result in run_checks(args.config, os.environ):
        ok = ok and bool(result["ok"])
        print(json.dumps(result), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
