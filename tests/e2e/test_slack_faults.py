"""Faults on the way back to Slack, produced for real: Slack outages, a killed `serve`, replicas, Redis restarts."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import Stack, job_id_of, registries_yaml, running_stack
from tests.support.services import DockerEngine, RedisServer, Registry, build_image, free_port
from tests.support.stack import ServeProcess, WorkerProcess
from tests.support.waiting import wait_until
from workers.kernel.keys import job_key


def faults_config(registry: Registry) -> str:
    return registries_yaml(registry) + textwrap.dedent("""\
        hosts: [build-1, build-2]
        default_host: build-1
        timeouts: {push: 5m, pull: 5m, tag: 1m, login: 1m}
        access:
          roles:
            admin: {actions: ["*"]}
          grants:
            - {role: admin, users: [U0ADMIN]}
        """)


@pytest.fixture
def fault_stack(redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> Iterator[Stack]:
    with running_stack(redis_server, docker_engine, registry, db=9, config_text=faults_config(registry)) as stack:
        yield stack




def _state(stack: Stack, job_id: str) -> str:
    return stack.redis.hget(job_key(job_id), "state") or ""


def _start_push(stack: Stack, image: str, seed: str) -> str:
    """Push a 64 MB image of 4 layers as U0ADMIN; return the job id once it runs."""
    build_image(stack.engine.host, image, "1", layers=4, layer_size=16 * 1024 * 1024, seed=seed)
    _, body = stack.command(f"push {image} 1", user="U0ADMIN")
    job_id = job_id_of(body)
    wait_until(lambda: _state(stack, job_id) in ("running", "succeeded"), 60, "the job to start")
    return job_id


def _posts_for(stack: Stack, job_id: str, channel: str = "C0OPS") -> list:
    return [c for c in stack.slack.calls_to("chat.postMessage")
            if c.params.get("channel") == channel and f"job {job_id}" in (c.params.get("text") or "")]


def _final_deliveries(stack: Stack, job_id: str) -> int:
    calls = stack.slack.calls_to("chat.update") + stack.slack.calls_to("chat.postMessage")
    return sum(1 for c in calls if (c.params.get("text") or "").startswith("succeeded") and f"job {job_id}"
               in c.params["text"])


def test_a_slack_outage_429_then_5xx_then_a_hang_loses_no_result(fault_stack: Stack) -> None:
    stack = fault_stack
    start = time.monotonic()
    phases = [(6.0, ("429", 1.0)), (12.0, ("5xx", 500.0)), (24.0, ("hang", 12.0))]
    recovery = phases[-1][0]

    def outage(method: str) -> tuple[str, float] | None:
        if not method.startswith("chat."):
            return None
        elapsed = time.monotonic() - start
        return next((failure for until, failure in phases if elapsed < until), None)

    stack.slack.outage = outage
    status, body = stack.command("login", user="U0ADMIN")
    assert status == 200  # the ack does not depend on Slack's Web API
    job_id = job_id_of(body)
    wait_until(lambda: _state(stack, job_id) == "succeeded", 60, "the job to finish during the outage")
    assert time.monotonic() - start < recovery
    message = stack.final_message(job_id, timeout=recovery + 45)
    delivered_after = time.monotonic() - start - recovery
    assert delivered_after <= 30, f"final update {delivered_after:.1f} s after Slack recovered"
    assert message["text"].startswith("succeeded")
    assert len(stack.slack.failed_calls) >= 3  # Slack really was refusing
    assert len([c for c in stack.slack.failed_calls if c.method.startswith("chat.")]) >= 3
    time.sleep(3)
    assert len(_posts_for(stack, job_id)) == 1
    assert _final_deliveries(stack, job_id) == 1
    with urllib.request.urlopen(f"{stack.serve.url}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    errors = re.search(r'regops_slack_api_errors_total\{method="chat.postMessage"\} (\d+)', metrics)
    assert errors and int(errors.group(1)) >= 1, metrics


def test_a_serve_killed_between_start_and_end_of_a_job_still_delivers_its_result(fault_stack: Stack) -> None:
    stack = fault_stack
    job_id = _start_push(stack, "centos7-crash", "serve-kill")
    worker = stack.workers[0]
    worker.signal_all(signal.SIGSTOP)  # hold the job mid-run while serve dies
    try:
        assert _state(stack, job_id) == "running"
        stack.serve.kill()
    finally:
        worker.signal_all(signal.SIGCONT)
    wait_until(lambda: _state(stack, job_id) == "succeeded", 120, "the job to finish with no serve running")
    env = dict(stack.serve._env)
    config = stack.serve._args[1]
    with ServeProcess(env, config) as replacement:
        message = stack.final_message(job_id, timeout=60)
        assert message["text"].startswith("succeeded")
        assert stack.registry.manifest_digest("com.example.namespace/centos7-crash", "1") in message["text"]
        time.sleep(2)
        assert len(_posts_for(stack, job_id)) == 1
        assert _final_deliveries(stack, job_id) == 1
        assert replacement.running


def test_two_serve_replicas_post_each_job_once(fault_stack: Stack) -> None:
    stack = fault_stack
    env = dict(stack.serve._env)
    with ServeProcess(env, stack.serve._args[1]) as second:
        jobs = []
        for index in range(8):
            target = stack if index % 2 == 0 else None
            if target is None:
                # Send the command to the second replica by pointing the stack's helper at it.
                original = stack.serve
                stack.serve = second
                try:
                    _, body = stack.command("login", user="U0ADMIN")
                finally:
                    stack.serve = original
            else:
                _, body = stack.command("login", user="U0ADMIN")
            jobs.append(job_id_of(body))
        for job_id in jobs:
            assert stack.final_message(job_id, timeout=60)["text"].startswith("succeeded")
        time.sleep(3)
        for job_id in jobs:
            assert len(_posts_for(stack, job_id)) == 1, job_id
            assert _final_deliveries(stack, job_id) == 1, job_id


class AofRedis:
    """redis-server with AOF fsynced on every write, restartable on the same port and data directory."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="regops-aof-"))
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), 20, "redis-server with AOF to start")

    def kill(self) -> None:
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(10)
            self._process = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_jobs_queued_before_a_redis_crash_run_after_it_restarts_with_aof(
        docker_engine: DockerEngine, registry: Registry) -> None:
    aof = AofRedis()
    aof.start()
    try:
        with running_stack(aof, docker_engine, registry, db=0,  # type: ignore[arg-type]
                           config_text=faults_config(registry)) as stack:
            jobs = []
            for _ in range(3):  # build-2 has no worker yet: the jobs wait in its queue
                _, body = stack.command("login --host build-2", user="U0ADMIN")
                jobs.append(job_id_of(body))
            # Let the relay post and record each job's message first: a crash between Slack's answer
            # and Redis storing its ts is the one window that can post twice (see the README).
            wait_until(lambda: all(stack.redis.hget(f"regops:slack:{job}", "ts") for job in jobs), 30,
                  "the queued messages to be posted and recorded")
            aof.kill()
            aof.start()
            assert redis.Redis(port=aof.port).llen("rq:queue:regops.build-2") == 3
            env = {k: v for k, v in stack.workers[0]._env.items()}
            with WorkerProcess(env, stack.serve._args[1], "build-2"):
                for job_id in jobs:
                    message = stack.final_message(job_id, timeout=90)
                    assert message["text"].startswith("succeeded")
                    assert len(_posts_for(stack, job_id)) == 1
    finally:
        aof.stop()


def test_a_worker_killed_mid_push_gets_its_job_reported_failed_within_a_minute(fault_stack: Stack) -> None:
    stack = fault_stack
    job_id = _start_push(stack, "centos7-oom", "sigkill")
    worker = stack.workers[0]
    worker.signal_all(signal.SIGSTOP)  # freeze it mid-push, then kill it as the OOM killer would
    assert _state(stack, job_id) == "running"
    killed_at = time.monotonic()
    worker.kill()
    message = stack.slack.wait_for(
        lambda: next((m for (chan, _ts), m in stack.slack.messages.items()
                      if chan == "C0OPS" and f"job {job_id}" in (m.get("text") or "")
                      and (m.get("text") or "").startswith("failed")), None), 70, "the failure report")
    assert time.monotonic() - killed_at <= 60
    assert "worker running it stopped" in message["text"]
    assert len(_posts_for(stack, job_id)) == 1
    # A worker started on the same host right after takes work at once.
    with WorkerProcess(dict(worker._env), stack.serve._args[1], "build-1"):
        _, body = stack.command("login", user="U0ADMIN")
        assert stack.final_message(job_id_of(body), timeout=30)["text"].startswith("succeeded")


def test_sigterm_to_serve_during_a_job_loses_nothing(fault_stack: Stack) -> None:
    stack = fault_stack
    job_id = _start_push(stack, "centos7-term", "sigterm")
    worker = stack.workers[0]
    worker.signal_all(signal.SIGSTOP)  # keep the job running while serve goes down
    try:
        stack.serve.signal_all(signal.SIGTERM)  # as systemd sends it: the whole group
        stack.serve._process.wait(timeout=60)  # type: ignore[union-attr]
        log = stack.serve.log_text()
        assert "relayed" in log, log  # it drained on its way out
    finally:
        worker.signal_all(signal.SIGCONT)
    wait_until(lambda: _state(stack, job_id) == "succeeded", 120, "the job to finish")
    with ServeProcess(dict(stack.serve._env), stack.serve._args[1]) as replacement:
        message = stack.final_message(job_id, timeout=60)
        assert message["text"].startswith("succeeded")
        time.sleep(1)
        assert len(_posts_for(stack, job_id)) == 1, stack.serve.log_text() + replacement.log_text()
        assert _final_deliveries(stack, job_id) == 1


def test_two_pushes_of_one_reference_never_run_at_once_and_the_second_says_it_waits(fault_stack: Stack) -> None:
    stack = fault_stack
    build_image(stack.engine.host, "centos7-same", "1", layers=2, layer_size=4 * 1024 * 1024, seed="same-ref")
    first_worker = stack.workers[0]
    with WorkerProcess(dict(first_worker._env), stack.serve._args[1], "build-2"):
        _, body = stack.command("push centos7-same 1 --host build-1", user="U0ADMIN")
        first = job_id_of(body)
        wait_until(lambda: _state(stack, first) in ("running", "succeeded"), 60, "the first push to start")
        first_worker.signal_all(signal.SIGSTOP)  # the first push holds the reference for a while
        try:
            assert _state(stack, first) == "running"
            _, body = stack.command("push centos7-same 1 --host build-2", user="U0ADMIN")
            second = job_id_of(body)
            assert f"waiting for job {first} (same reference)" in body["text"]  # said in the ack already
            # Taken by the worker of build-2, which waits on the reference lock: the message says so too.
            wait_until(lambda: _state(stack, second) == "running", 15, "the second push to be taken by build-2")
            stack.slack.wait_for(
                lambda: any(m.get("text", "").startswith("running") and f"job {second}" in m["text"]
                            and f"waiting for job {first}" in m["text"] for m in stack.slack.messages.values()),
                15, "the second job's waiting note while on the lock")
        finally:
            first_worker.signal_all(signal.SIGCONT)
        assert stack.final_message(first, timeout=60)["text"].startswith("succeeded")
        final = stack.final_message(second, timeout=60)
        assert final["text"].startswith("succeeded") and "waiting" not in final["text"]
        digest = stack.registry.manifest_digest("com.example.namespace/centos7-same", "1")
        assert digest and digest in final["text"]
