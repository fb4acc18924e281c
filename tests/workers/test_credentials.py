"""The worker's view of the config file: registry credentials, read per call, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.credentials import load_credentials, resolve_config_path
from workers.errors import ConfigError, WorkerError
from workers.kernel.secrets import Secret

CONFIG = """
registries:
  main:
    server: dockerhub.example.com:5100
    services_hostname: namespace.example.com
    username: user001@namespace.example.com
    password_env: REGISTRY_PASSWORD
  filed:
    server: other.example.com:5000
    username: user002@namespace.example.com
    password_file: {secret}
default_registry: main
hosts: [build-1]
default_host: build-1
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    secret = tmp_path / "registry-password"
    secret.write_text("s3cret-from-file\n")
    path = tmp_path / "regops.yaml"
    path.write_text(CONFIG.format(secret=secret))
    return path


def test_password_from_environment(config: Path) -> None:
    creds = load_credentials(config, {"REGISTRY_PASSWORD": "s3cret-env"}).get("main")
    assert (creds.server, creds.username) == ("dockerhub.example.com:5100", "user001@namespace.example.com")
    assert creds.password == Secret("s3cret-env")
    assert "s3cret-env" not in repr(creds)


def test_password_file_loses_its_trailing_newline(config: Path) -> None:
    creds = load_credentials(config, {}).get("filed")
    assert creds.password.reveal() == "s3cret-from-file"


def test_password_is_read_at_call_time(config: Path) -> None:
    environ = {"REGISTRY_PASSWORD": "first"}
    store = load_credentials(config, environ)
    environ["REGISTRY_PASSWORD"] = "rotated"
    assert store.get("main").password.reveal() == "rotated"


def test_unknown_registry_is_a_clear_error(config: Path) -> None:
    with pytest.raises(WorkerError) as caught:
        load_credentials(config, {}).get("staging")
    assert caught.value.user_message == "registry 'staging' is not configured on this worker"
    assert caught.value.retryable is False


def test_missing_password_names_the_variable_not_a_value(config: Path) -> None:
    store = load_credentials(config, {"REGISTRY_PASSWORD": ""})
    with pytest.raises(ConfigError) as caught:
        store.get("main")
    assert "REGISTRY_PASSWORD" in caught.value.user_message
    assert store.missing_passwords() == [caught.value.user_message]


def test_unreadable_password_file(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(CONFIG.format(secret=tmp_path / "absent"))
    with pytest.raises(ConfigError) as caught:
        load_credentials(path, {}).get("filed")
    assert "cannot read" in caught.value.user_message


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(
        "registries:\n"
        "  a: {server: r:1, password: plain-text-password}\n"
        "  b: {username: u, password_env: X, password_file: /y}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_credentials(path, {})
    message = caught.value.user_message
    for fragment in (
        "registries.a.username: required",
        "registries.a.password: not allowed",
        "registries.b.server: required",
        "registries.b: set exactly one of password_env and password_file",
    ):
        assert fragment in message
    assert "plain-text-password" not in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("registries: [1, 2]\n", "registries: expected a mapping"),
        ("registries: {a: [\n", "not valid YAML at line"),
    ],
)
def test_bad_documents(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path, {})
    assert fragment in caught.value.user_message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_credentials(tmp_path / "nope.yaml", {})
    assert "cannot read config file" in caught.value.user_message


def test_config_path_resolution(tmp_path: Path) -> None:
    assert resolve_config_path("/etc/regops.yaml", {"REGOPS_CONFIG": "/x.yaml"}) == Path("/etc/regops.yaml")
    assert resolve_config_path(None, {"REGOPS_CONFIG": "/x.yaml"}) == Path("/x.yaml")
    assert resolve_config_path(None, {}) == Path("regops.yaml")
