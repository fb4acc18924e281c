"""The `regops` command line: check-config's report and exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def regops(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd,
                          check=False)


def test_check_config_prints_a_summary_of_a_valid_config_and_no_password() -> None:
    result = regops("check-config", "--config", str(ROOT / "deploy" / "regops.example.yaml"),
                    env={"REGISTRY_PASSWORD": "pw-must-not-show"})
    assert result.returncode == 0, result.stderr
    assert "dockerhub.example.com:5100" in result.stdout and "com.example.namespace" in result.stdout
    assert "pw-must-not-show" not in result.stdout + result.stderr


def test_check_config_lists_every_problem_with_its_key_path_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "regops.yaml"
    config.write_text(
        "registries:\n  main:\n    server: dockerhub.example.com:5100\n    services_hostname: ns.example.com\n"
        "    username: u\n    password_env: REGISTRY_PASSWORD\n    pasword: x\n"
        "default_registry: mian\nhosts: [build-1]\ndefault_host: build-2\n"
        "access:\n  roles: {admin: {actions: ['*']}}\n  grants:\n    - {role: root, users: [U1]}\n")
    result = regops("--config", str(config), "check-config")
    assert result.returncode == 1
    for fragment in ("registries.main.pasword", "default_registry", "default_host", "access.grants[0].role"):
        assert fragment in result.stderr, result.stderr


def test_the_config_path_comes_from_the_environment_then_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "regops.yaml").write_text((ROOT / "deploy" / "regops.example.yaml").read_text())
    assert regops("check-config", cwd=tmp_path).returncode == 0
    missing = regops("check-config", env={"REGOPS_CONFIG": str(tmp_path / "nope.yaml")}, cwd=tmp_path)
    assert missing.returncode == 1 and "nope.yaml" in missing.stderr


def test_serve_refuses_to_start_without_slack_credentials() -> None:
    result = regops("--config", str(ROOT / "deploy" / "regops.example.yaml"), "serve")
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "SLACK_SIGNING_SECRET" in result.stderr


def test_check_config_reports_slack_id_problems_with_the_others_in_one_list(tmp_path: Path) -> None:
    config = tmp_path / "regops.yaml"
    config.write_text(
        "registries:\n  main:\n    server: dockerhub.example.com:5100\n    services_hostname: ns.example.com\n"
        "    username: u\n    password_env: REGISTRY_PASSWORD\n"
        "hosts: [build-1]\ndefault_host: build-2\nnotify_channel: deploys channel\n"
        "access:\n  roles: {admin: {actions: ['*']}}\n  grants:\n    - {role: admin, users: [alice], channels: ['#ops']}\n")
    result = regops("--config", str(config), "check-config")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "regops: the config has 4 problem(s):"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  - default_host", "  - notify_channel", "  - access.grants[0].users[0]", "  - access.grants[0].channels[0]"]
    assert "`alice` is not a Slack user ID" in result.stderr
    assert "`#ops` is not a Slack channel ID" in result.stderr


def test_check_config_warns_about_narrowed_image_globs_on_stderr_and_stays_valid() -> None:
    result = regops("check-config", "--config", str(ROOT / "deploy" / "regops.example.yaml"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("regops: warning: ")]
    assert len(warnings) == 1 and "access.roles.deployer.images[0]: `centos7-*`" in warnings[0]
    assert "config ok, with 1 warning(s)" in result.stdout and "warning" not in result.stdout.split("config ok")[0]


def test_serve_refuses_to_start_without_a_registrys_events_token_naming_the_variable_not_a_value(
        tmp_path: Path) -> None:
    config = tmp_path / "regops.yaml"
    config.write_text(
        "registries:\n"
        "  main:\n    server: dockerhub.example.com:5100\n    services_hostname: ns.example.com\n"
        "    username: u\n    password_env: REGISTRY_PASSWORD\n    events_token_env: MAIN_EVENTS_TOKEN\n"
        "  prod:\n    server: prod.example.com:5000\n    services_hostname: ns.example.com\n"
        "    username: u\n    password_env: REGISTRY_PASSWORD\n    events_token_env: PROD_EVENTS_TOKEN\n"
        "default_registry: main\nhosts: [build-1]\n")
    slack = {"SLACK_BOT_TOKEN": "xoxb-cli-test", "SLACK_SIGNING_SECRET": "s" * 32}
    missing = regops("--config", str(config), "serve", env={**slack, "PROD_EVENTS_TOKEN": "tiny"})
    assert missing.returncode == 2
    assert "the events token of registry `main` (environment variable MAIN_EVENTS_TOKEN) is empty or not set" \
        in missing.stderr
    assert "registry `prod` (environment variable PROD_EVENTS_TOKEN) is shorter than 16" in missing.stderr
    shared = "shared-events-token-0123456789"
    same = regops("--config", str(config), "serve",
                  env={**slack, "MAIN_EVENTS_TOKEN": shared, "PROD_EVENTS_TOKEN": shared})
    assert same.returncode == 2 and "is the same as the events token of registry `main`" in same.stderr
    assert shared not in same.stdout + same.stderr
