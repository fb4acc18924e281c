"""Record what a real Distribution registry sends to a notifications endpoint, into JSON fixtures.

Run ``.venv/bin/python -m tests.support.record_envelopes`` (as root: it starts a private dockerd)
to refresh tests/support/registry_envelopes/*.json; the envelope parser's tests read those files.
Each fixture is one request as it arrived: its content type, its ``Authorization`` header (the
recorder's own throwaway token), and the body exactly as sent.  Every request is also printed,
in order, with what was done just before, so the registry's behaviour (how many envelopes, which
actions, retries after a refusal) can be read off the output.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import requests

from tests.support.registry_images import ACCEPT, DOCKER_MANIFEST, ImageWriter, basic
from tests.support.services import DockerEngine, Registry, build_image, free_port

ENVELOPES = Path(__file__).with_name("registry_envelopes")
NAMESPACE = "com.example.namespace"
TOKEN = "recorder-token"


@dataclass
class Capture:
    """The requests an endpoint received, in order; it answers ``status`` (then 200) ``refusals`` times."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    refusals: int = 0
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            answer = self.status if self.refusals > 0 else 200
            if self.refusals > 0:
                self.refusals -= 1
            self.requests.append({"at": time.time(), "answer": answer, "headers": headers,
                                  "body": json.loads(body)})
            return answer

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self.lock:
            return self.requests[mark:]


def _handler(capture: Capture) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            answer = capture.take({k: v for k, v in self.headers.items()}, body)
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def settle(capture: Capture, quiet: float = 2.0, timeout: float = 30.0) -> None:
    """Wait until no request has come for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = len(capture.requests)
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if len(capture.requests) != last:
            last, still_since = len(capture.requests), time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return


def describe(step: str, received: list[dict[str, Any]]) -> None:
    print(f"== {step}: {len(received)} request(s)")
    for request in received:
        summary = [(e.get("action"), e.get("target", {}).get("mediaType"), e.get("target", {}).get("tag"),
                    (e.get("target", {}).get("digest") or "")[:19]) for e in request["body"].get("events", [])]
        print(f"   {request['at']:.3f} answered {request['answer']} "
              f"{request['headers'].get('Content-Type')}: {summary}")


def save(name: str, request: dict[str, Any]) -> None:
    ENVELOPES.mkdir(exist_ok=True)
    fixture = {"content_type": request["headers"].get("Content-Type"),
               "authorization": request["headers"].get("Authorization"), "body": request["body"]}
    (ENVELOPES / f"{name}.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"   saved {name}.json")


def first_with(received: list[dict[str, Any]], action: str, tagged: bool | None = None) -> dict[str, Any]:
    for request in received:
        for event in request["body"].get("events", []):
            if event.get("action") == action and (tagged is None or bool(event["target"].get("tag")) == tagged):
                return request
    raise AssertionError(f"no {action} envelope among {len(received)}")


def record(engine: DockerEngine, registry: Registry, capture: Capture) -> None:
    auth = basic(registry.username, registry.password)
    repo = f"{NAMESPACE}/recorded"
    with ImageWriter(registry.base_url, auth) as writer:
        mark = len(capture.requests)
        image = writer.image(repo, "1.0", media_type=DOCKER_MANIFEST)
        settle(capture)
        pushed = capture.since(mark)
        describe("manifest push under a tag through the API", pushed)
        save("push_api", first_with(pushed, "push", tagged=True))
        save("push_blob", pushed[0])

        mark = len(capture.requests)
        writer.get_manifest(repo, "1.0")
        settle(capture)
        pulled = capture.since(mark)
        describe("manifest GET (pull) with ignore: actions [pull]", pulled)
        save("pull_manifest", first_with(pulled, "pull"))

        mark = len(capture.requests)
        writer.put_manifest(repo, "1.1", image.manifest, image.media_type)
        settle(capture)
        describe("the same manifest under a second tag", capture.since(mark))

        mark = len(capture.requests)
        answer = requests.delete(f"{registry.base_url}/v2/{repo}/manifests/1.1",
                                 headers={"Authorization": auth(repo), "Accept": ACCEPT}, timeout=10)
        settle(capture)
        print(f"== DELETE by tag answered {answer.status_code}: {answer.text.strip()[:200]}")
        describe("after DELETE by tag", capture.since(mark))

        mark = len(capture.requests)
        answer = requests.delete(f"{registry.base_url}/v2/{repo}/manifests/{image.digest}",
                                 headers={"Authorization": auth(repo)}, timeout=10)
        settle(capture)
        print(f"== DELETE by digest (tags 1.0 and 1.1 on it) answered {answer.status_code}")
        deleted = capture.since(mark)
        describe("manifest delete by digest", deleted)
        save("delete_manifest", first_with(deleted, "delete", tagged=False))
        save("delete_tag", first_with(deleted, "delete", tagged=True))

        mark = len(capture.requests)
        writer.index(repo, "multi")
        settle(capture)
        indexed = capture.since(mark)
        describe("an OCI index under a tag (its children pushed by digest first)", indexed)
        save("push_index", first_with(indexed, "push", tagged=True))
        save("push_digest_only", next(r for r in indexed if r["body"]["events"][0]["target"].get("mediaType")
                                      == "application/vnd.oci.image.manifest.v1+json"))

        capture.status, capture.refusals = 500, 3
        mark = len(capture.requests)
        writer.image(repo, "2.0", media_type=DOCKER_MANIFEST, layers=1)
        settle(capture, quiet=6.0, timeout=60.0)
        retried = capture.since(mark)
        describe("a push while the endpoint answers 500 three times", retried)
        ids = [tuple(e["id"] for e in r["body"]["events"]) for r in retried]
        print(f"   distinct envelopes (by event ids): {len(set(ids))} of {len(ids)} requests; gaps "
              f"{[round(b['at'] - a['at'], 2) for a, b in itertools.pairwise(retried)]}")

    api = docker.APIClient(base_url=engine.host, timeout=120)
    try:
        reference = f"{registry.server}/{NAMESPACE}/recorded-cli"
        build_image(engine.host, reference, "3.0", layers=2, layer_size=4096, seed="envelopes")
        mark = len(capture.requests)
        credentials = {"username": registry.username, "password": registry.password,
                       "serveraddress": registry.server}
        for line in api.push(reference, tag="3.0", auth_config=credentials, stream=True, decode=True):
            if "errorDetail" in line:
                raise AssertionError(f"docker push failed: {line['errorDetail']}")
        settle(capture)
        pushed = capture.since(mark)
        describe("docker push (dockerd)", pushed)
        save("push_docker", first_with(pushed, "push", tagged=True))
    finally:
        api.close()


def main() -> None:
    capture = Capture()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(capture))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = {"name": "regops", "url": f"http://127.0.0.1:{server.server_address[1]}/registry/events",
                "headers": {"Authorization": [f"Bearer {TOKEN}"]}, "timeout": "2s", "threshold": 3,
                "backoff": "1s", "ignore": {"actions": ["pull", "mount"]}}
    try:
        with DockerEngine() as engine, Registry(notifications=[endpoint]) as registry:
            record(engine, registry, capture)
    finally:
        server.shutdown()
    print("headers of the first request:", capture.requests[0]["headers"])


if __name__ == "__main__":
    main()
