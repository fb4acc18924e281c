"""Record real push/pull progress streams from a private dockerd and registry into JSON fixtures.

Run ``.venv/bin/python -m tests.workers.record_streams`` (as root) to refresh
tests/workers/streams/*.json; the parser tests read those files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import docker

from tests.support.services import DockerEngine, Registry, build_image

STREAMS = Path(__file__).with_name("streams")
NAMESPACE = "com.example.namespace"


def _record(name: str, lines: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    recorded = list(lines)
    STREAMS.mkdir(exist_ok=True)
    (STREAMS / f"{name}.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"{name}: {len(recorded)} lines")
    return recorded


def record(engine: DockerEngine, registry: Registry) -> None:
    api = docker.APIClient(base_url=engine.host, timeout=120)
    auth = {"username": registry.username, "password": registry.password, "serveraddress": registry.server}
    wrong = dict(auth, password="not-the-password")
    repo = f"{registry.server}/{NAMESPACE}/recorded"
    other = f"{registry.server}/{NAMESPACE}/recorded-copy"

    # Same seed, one more layer: "bigger" shares its first three layers with "base".
    build_image(engine.host, repo, "base", layers=3, layer_size=1_500_000, seed="streams")
    build_image(engine.host, repo, "bigger", layers=4, layer_size=1_500_000, seed="streams")
    api.tag(f"{repo}:base", other, "base")

    def push(repository: str, tag: str, auth_config: dict[str, str] = auth) -> Iterable[Mapping[str, Any]]:
        return api.push(repository, tag=tag, auth_config=auth_config, stream=True, decode=True)  # type: ignore[no-any-return]

    def pull(repository: str, tag: str) -> Iterable[Mapping[str, Any]]:
        return api.pull(repository, tag=tag, auth_config=auth, stream=True, decode=True)  # type: ignore[no-any-return]

    _record("push_unauthorized", push(repo, "base", wrong))
    _record("push_fresh", push(repo, "base"))
    _record("push_existing", push(repo, "bigger"))
    _record("push_mounted", push(other, "base"))
    _record("push_missing_local", push(f"{registry.server}/{NAMESPACE}/absent", "1.0"))

    for tag in ("base", "bigger"):
        api.remove_image(f"{repo}:{tag}")
    api.remove_image(f"{other}:base")
    _record("pull_fresh", pull(repo, "base"))
    _record("pull_shared_layers", pull(repo, "bigger"))
    _record("pull_up_to_date", pull(repo, "bigger"))
    api.close()


def main() -> int:
    with DockerEngine() as engine, Registry() as registry:
        record(engine, registry)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
