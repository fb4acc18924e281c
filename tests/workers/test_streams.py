"""Stream parsing on push/pull streams recorded from a real dockerd (see record_streams.py)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from workers import docker_ops
from workers.errors import WorkerError
from workers.kernel.jobs import FailureReason
from workers.progress import Progress, layer_fraction

STREAMS = Path(__file__).with_name("streams")
SUCCESSFUL = ["push_fresh", "push_existing", "push_mounted", "pull_fresh", "pull_shared_layers"]


def stream(name: str) -> list[Mapping[str, Any]]:
    lines: list[Mapping[str, Any]] = json.loads((STREAMS / f"{name}.json").read_text())
    return lines


class FakeClock:
    def __init__(self, step: float = 0.0) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def emitted(lines: list[Mapping[str, Any]], interval: float, step: float) -> list[tuple[float, int]]:
    clock = FakeClock(step)
    progress = Progress(interval=interval, clock=clock)
    out = []
    for line in lines:
        value = progress.feed(line)
        if value is not None:
            out.append((clock.now, value))
    return out


@pytest.mark.parametrize("name", SUCCESSFUL)
def test_unthrottled_progress_rises_strictly_and_stops_short_of_100(name: str) -> None:
    values = [v for _, v in emitted(stream(name), interval=0.0, step=0.0)]
    assert values, "a stream that moves layers must report some progress"
    assert values == sorted(set(values)), "emitted only when it grew"
    assert 0 < values[0] and values[-1] == 99


@pytest.mark.parametrize("name", SUCCESSFUL)
def test_final_percent_counts_every_layer_done(name: str) -> None:
    progress = Progress(interval=0.0)
    for line in stream(name):
        progress.feed(line)
    layer_ids = {line["id"] for line in stream(name) if "progressDetail" in line and "id" in line}
    assert set(progress.layers) == layer_ids
    assert all(fraction == 1.0 for fraction in progress.layers.values())
    assert progress.percent == 99


def test_tag_id_of_pulling_from_line_is_not_a_layer() -> None:
    progress = Progress(interval=0.0)
    for line in stream("pull_fresh"):
        progress.feed(line)
    assert "base" not in progress.layers
    assert len(progress.layers) == 3


def test_up_to_date_pull_reports_nothing() -> None:
    assert emitted(stream("pull_up_to_date"), interval=0.0, step=0.0) == []


def test_layers_already_in_the_registry_count_as_done() -> None:
    lines = stream("push_existing")
    progress = Progress(interval=0.0)
    for line in lines:
        progress.feed(line)
        if sum(1 for f in progress.layers.values() if f == 1.0) == 3:
            break
    # Three of four layers existed: at least 75 % before the fourth is pushed.
    assert progress.percent >= 75


@pytest.mark.parametrize("name", SUCCESSFUL)
def test_rate_limit_spaces_emissions_by_the_interval(name: str) -> None:
    out = emitted(stream(name), interval=1.0, step=0.4)
    times = [t for t, _ in out]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))
    assert len(out) < len(emitted(stream(name), interval=0.0, step=0.4))


def test_frozen_clock_lets_only_the_first_value_through() -> None:
    out = emitted(stream("pull_fresh"), interval=1.0, step=0.0)
    assert len(out) == 1


def test_progress_never_goes_down_when_a_layer_appears_late() -> None:
    progress = Progress(interval=0.0)
    assert progress.feed({"status": "Pushed", "progressDetail": {}, "id": "a"}) == 99
    assert progress.feed({"status": "Preparing", "progressDetail": {}, "id": "b"}) is None
    assert progress.percent == 99


@pytest.mark.parametrize(
    ("status", "current", "total", "expected"),
    [
        ("Preparing", None, None, 0.0),
        ("Waiting", None, None, 0.0),
        ("Pushing", 50, 200, 0.25),
        ("Pushing", 300, 200, 1.0),
        ("Pushed", None, None, 1.0),
        ("Layer already exists", None, None, 1.0),
        ("Mounted from com.example.namespace/x", None, None, 1.0),
        ("Pulling fs layer", None, None, 0.0),
        ("Downloading", 100, 200, 0.25),
        ("Verifying Checksum", None, None, 0.5),
        ("Download complete", None, None, 0.5),
        ("Extracting", 100, 200, 0.75),
        ("Pull complete", None, None, 1.0),
        ("Already exists", None, None, 1.0),
        ("Pulling from com.example.namespace/x", None, None, None),
        ("Retrying in 5 seconds", None, None, None),
    ],
)
def test_layer_fraction(status: str, current: int | None, total: int | None, expected: float | None) -> None:
    assert layer_fraction(status, current, total) == expected


def test_push_digest_comes_from_the_aux_line_for_the_tag() -> None:
    lines = stream("push_fresh")
    digests = {d for d in (docker_ops.push_digest(line, "base") for line in lines) if d}
    summary = next(line["status"] for line in lines if "digest: sha256:" in str(line.get("status")))
    assert len(digests) == 1
    digest = digests.pop()
    assert digest in summary
    assert not any(docker_ops.push_digest(line, "other-tag") for line in lines)


def test_pull_digest_comes_from_the_digest_status_line() -> None:
    pulled = {d for d in (docker_ops.pull_digest(line) for line in stream("pull_shared_layers")) if d}
    pushed = {d for d in (docker_ops.push_digest(line, "bigger") for line in stream("push_existing")) if d}
    assert pulled and pulled == pushed


@pytest.mark.parametrize("name", SUCCESSFUL + ["pull_up_to_date"])
def test_successful_streams_carry_no_error(name: str) -> None:
    for line in stream(name):
        docker_ops.check_line(line, "push", "ref", "server")


@pytest.mark.parametrize(
    ("name", "reason", "fragment"),
    [
        ("push_unauthorized", FailureReason.AUTH_FAILED, "rejected the worker's credentials"),
        ("push_missing_local", FailureReason.IMAGE_NOT_FOUND, "local image"),
    ],
)
def test_error_lines_in_recorded_streams(name: str, reason: FailureReason, fragment: str) -> None:
    with pytest.raises(WorkerError) as caught:
        for line in stream(name):
            docker_ops.check_line(line, "push", "REF", "SERVER")
    assert caught.value.reason == reason.value
    assert fragment in caught.value.user_message
    assert "REF" in caught.value.user_message or "SERVER" in caught.value.user_message


@pytest.mark.parametrize(
    ("message", "action", "reason", "retryable"),
    [
        ('Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused', "push", "registry_unreachable", True),
        ("Get https://r.example.com/v2/: dial tcp: lookup r.example.com: no such host", "pull", "registry_unreachable", True),
        ("net/http: request canceled (Client.Timeout exceeded): i/o timeout", "push", "registry_unreachable", True),
        ("login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized", "login", "auth_failed", False),
        ("no basic auth credentials", "push", "auth_failed", False),
        ("denied: requested access to the resource is denied", "push", "denied", False),
        ("manifest for r:5000/ns/x:1 not found: manifest unknown: manifest unknown", "pull", "image_not_found", False),
        ("received unexpected HTTP status: 500 Internal Server Error", "push", "registry_error", True),
        ("received unexpected HTTP status: 503 Service Unavailable", "pull", "registry_error", True),
        ("received unexpected HTTP status: 502 Bad Gateway", "push", "registry_error", True),
        ('Patch "http://r:5000/v2/ns/x/blobs/uploads/abc": EOF', "push", "registry_unreachable", True),
        ("write tcp 127.0.0.1:1->127.0.0.1:5000: write: broken pipe", "push", "registry_unreachable", True),
        ("blob upload invalid: digest invalid", "push", "registry_error", False),
    ],
)  # fmt: skip
def test_classify(message: str, action: str, reason: str, retryable: bool) -> None:
    error = docker_ops.classify(message, action, "r:5000/ns/x:1", "r:5000")
    assert (error.reason, error.retryable) == (reason, retryable)
    assert message not in error.user_message


def test_classify_pull_not_found_message() -> None:
    error = docker_ops.classify("manifest unknown", "pull", "r:5000/ns/x:1", "r:5000")
    assert error.user_message == "image r:5000/ns/x:1 not found in the registry"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("r.example.com:5100/com.example.ns/app:latest", ("r.example.com:5100/com.example.ns/app", "latest")),
        ("localhost:5000/a/b/c:1.4.2", ("localhost:5000/a/b/c", "1.4.2")),
        ("app:1", ("app", "1")),
    ],
)
def test_split_reference(reference: str, expected: tuple[str, str]) -> None:
    assert docker_ops.split_reference(reference) == expected


@pytest.mark.parametrize("reference", ["r:5000/ns/app", "r:5000/ns/app:", "r:5000/ns/app@sha256:abc"])
def test_split_reference_needs_a_tag(reference: str) -> None:
    with pytest.raises(WorkerError) as caught:
        docker_ops.split_reference(reference)
    assert caught.value.reason == FailureReason.INVALID_REFERENCE.value


@pytest.mark.parametrize(
    ("reference", "server"),
    [
        ("r.example.com:5100/ns/app:1", "r.example.com:5100"),
        ("localhost/ns/app:1", "localhost"),
        ("ns/app:1", None),
    ],
)
def test_registry_of(reference: str, server: str | None) -> None:
    assert docker_ops.registry_of(reference) == server


def test_cached_layers_announced_first_do_not_jump_to_99() -> None:
    # pull_shared_layers lists three cached layers before the one it downloads.
    values = [v for _, v in emitted(stream("pull_shared_layers"), interval=0.0, step=0.0)]
    assert 75 <= values[0] < 90
    assert values[-1] == 99
