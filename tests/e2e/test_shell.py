"""`regops shell` end to end: a scripted console session pushes through a worker it starts itself."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import redis

from tests.e2e.conftest import NAMESPACE, write_config
from tests.support.services import DockerEngine, RedisServer, Registry, build_image


def run_shell(script: str, redis_server: RedisServer, engine: DockerEngine, registry: Registry,
              user: str = "U0ADMIN") -> subprocess.CompletedProcess[str]:
    directory = Path(tempfile.mkdtemp(prefix="regops-shell-"))
    config = write_config(directory, registry)
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/5",
           "DOCKER_HOST": engine.host, "REGISTRY_PASSWORD": registry.password}
    return subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "shell", "--user", user,
         "--worker-log", str(directory / "worker.log")],
        input=script, capture_output=True, text=True, env=env, timeout=300, check=False, cwd=Path(__file__).parents[2])


def test_a_scripted_shell_session_pushes_and_prints_every_event(
        redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> None:
    redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/5").flushdb()
    build_image(docker_engine.host, "centos7-shell", "3.1", layers=2, seed="shell-e2e")
    result = run_shell("help\nwhoami\n/registry push centos7-shell 3.1\n", redis_server, docker_engine, registry)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "push IMAGE TAG" in out  # the help text
    reference = f"{registry.server}/{NAMESPACE}/centos7-shell:3.1"
    assert f"Queued push of {reference}" in out
    # The console shows no Slack markup (defect: `*Your access*`, `<#C0CONSOLE>`, backticks, `/registry …`).
    assert "Your access" in out
    for markup in ("`", "*Your access*", "<#", "<@", "/registry ", ":inbox_tray:"):
        assert markup not in out, (markup, out)
    digest = registry.manifest_digest(f"{NAMESPACE}/centos7-shell", "3.1")
    assert digest
    lines = out.splitlines()
    started = [line for line in lines if line.startswith("[job ") and "started" in line]
    finished = [line for line in lines if line.startswith("[job ") and "succeeded" in line]
    queued = [line for line in lines if line.startswith("[job ") and "] queued" in line]
    assert queued and started and finished
    assert lines.index(queued[0]) < lines.index(started[0]) < lines.index(finished[0])
    assert digest in finished[0]


def test_the_shell_reports_a_failed_job_and_exits_1(
        redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> None:
    redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/5").flushdb()
    result = run_shell("push centos7-nothing-here 1\n", redis_server, docker_engine, registry)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in result.stdout and "local image not found" in result.stdout


def test_the_shell_applies_the_same_policy_as_slack(
        redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> None:
    redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/5").flushdb()
    result = run_shell("push web-frontend 1\n", redis_server, docker_engine, registry, user="U0DEV1")
    assert result.returncode == 0
    assert "may not push" in result.stdout or "not allowed" in result.stdout or "no grant" in result.stdout, \
        result.stdout
    assert "Queued" not in result.stdout


def test_a_refused_password_in_the_console_does_not_say_it_was_sent_to_slack(
        redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> None:
    result = run_shell("login -p hunter2secret\n", redis_server, docker_engine, registry)
    assert "rotate" in result.stdout and "Slack" not in result.stdout
    assert "hunter2secret" not in result.stdout + result.stderr


def test_at_a_terminal_log_lines_go_to_a_file_not_between_the_prompt_and_the_answers(
        redis_server: RedisServer, registry: Registry, tmp_path: Path) -> None:
    """Defect: `WARNING bot.core.service: …` lines interleaved with the console's output at a terminal."""
    import os
    import pty
    import select

    config = write_config(tmp_path, registry)
    log = tmp_path / "shell.log"
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/5", "TERM": "dumb"}
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "shell", "--user", "U0ADMIN", "--no-worker",
         "--log-file", str(log)],
        stdin=follower, stdout=follower, stderr=follower, env=env, cwd=Path(__file__).parents[2])
    os.close(follower)
    os.write(leader, b"push centos7-x 1 -p hunter2secret\nwhoami\nexit\n")
    seen = b""
    try:
        while process.poll() is None or select.select([leader], [], [], 0.2)[0]:
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
    finally:
        process.wait(timeout=30)
        os.close(leader)
    screen = seen.decode(errors="replace")
    assert "rotate" in screen and "Your access" in screen, screen
    assert "\x1b[1mYour access\x1b[0m" in screen  # bold at a terminal
    assert "WARNING" not in screen and "credentials in chat" not in screen, screen
    assert "command refused: credentials in chat" in log.read_text()
    assert "hunter2secret" not in screen.replace("push centos7-x 1 -p hunter2secret", "") + log.read_text()


def test_the_shell_answers_registry_queries_and_promotes_without_a_docker_push(
        redis_server: RedisServer, docker_engine: DockerEngine, registry: Registry) -> None:
    redis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/5").flushdb()
    build_image(docker_engine.host, "centos7-shell", "4.0", layers=1, seed="shell-registry")
    script = "push centos7-shell 4.0\ntags centos7-shell\npromote centos7-shell 4.0 stable\n"
    result = run_shell(script, redis_server, docker_engine, registry)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    digest = registry.manifest_digest(f"{NAMESPACE}/centos7-shell", "4.0")
    assert digest and registry.manifest_digest(f"{NAMESPACE}/centos7-shell", "stable") == digest
    assert "Looking up the tags of" in out
    # The query's answer is printed once it comes: the tag with its short digest.
    answered = [line for line in out.splitlines() if "4.0" in line and digest.partition(":")[2][:12] in line]
    assert answered, out
    assert f"promote of {registry.server}/{NAMESPACE}/centos7-shell:4.0" in out
    assert any(line.startswith("[job ") and "succeeded: promote" in line for line in out.splitlines())
    assert any(line.startswith("[job ") and line.endswith("started on the registry queue") for line in out.splitlines())
