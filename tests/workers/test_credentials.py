"""The worker's view of the config file: loaded by the kernel's loader, registry credentials read per call, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.__main__ import build_context
from workers.credentials import CredentialStore
from workers.errors import CredentialsError, WorkerError
from workers.kernel.config import load_config
from workers.kernel.errors import ConfigError
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
    namespace: com.example.other
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


def load_credentials(path: Path | str | None, environ: dict[str, str]) -> CredentialStore:
    """The credential store exactly as ``python -m workers --config PATH`` builds it."""
    return build_context(None if path is None else str(path), environ).credentials


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


def test_the_store_holds_the_kernels_registries(config: Path) -> None:
    registries = load_config(config).registries
    store = CredentialStore(registries, {})
    assert store.names() == ["filed", "main"]
    assert store.entry("main") is registries["main"]
    assert repr(store) == "CredentialStore(registries=['filed', 'main'])"


def test_unknown_registry_is_a_clear_error(config: Path) -> None:
    with pytest.raises(WorkerError) as caught:
        load_credentials(config, {}).get("staging")
    assert caught.value.user_message == "registry 'staging' is not configured on this worker"
    assert caught.value.retryable is False
    assert caught.value.reason == "internal"


def test_missing_password_names_the_variable_not_a_value(config: Path) -> None:
    store = load_credentials(config, {"REGISTRY_PASSWORD": ""})
    with pytest.raises(CredentialsError) as caught:
        store.get("main")
    assert "REGISTRY_PASSWORD" in caught.value.user_message
    assert store.missing_passwords() == [caught.value.user_message]


def test_passwords_lists_only_what_can_be_read_now(config: Path) -> None:
    environ = {"REGISTRY_PASSWORD": ""}
    store = load_credentials(config, environ)
    assert store.passwords() == ["s3cret-from-file"]
    environ["REGISTRY_PASSWORD"] = "s3cret-env"
    assert sorted(store.passwords()) == ["s3cret-env", "s3cret-from-file"]


def test_unreadable_password_file(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(CONFIG.format(secret=tmp_path / "absent"))
    with pytest.raises(CredentialsError) as caught:
        load_credentials(path, {}).get("filed")
    assert "cannot read" in caught.value.user_message


def test_empty_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "empty"
    secret.write_text("\n")
    path = tmp_path / "regops.yaml"
    path.write_text(CONFIG.format(secret=secret))
    with pytest.raises(CredentialsError, match="is empty"):
        load_credentials(path, {}).get("filed")


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(
        "registries:\n"
        "  a: {server: r:1, namespace: ns, password: plain-text-password}\n"
        "  b: {username: u, namespace: ns, password_env: X, password_file: /y}\n"
        "hosts: [build-1]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_credentials(path, {})
    message = caught.value.summary()
    for fragment in (
        "registries.a.username: is required",
        "registries.a.password: unknown key; passwords are never kept in the config",
        "registries.b.server: is required",
        "registries.b: give exactly one of `password_env`",
    ):
        assert fragment in message
    assert "plain-text-password" not in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("registries: [1, 2]\nhosts: [build-1]\n", "registries: must be a mapping of registry names to settings"),
        ("registries: {a: [\n", "invalid YAML"),
        ("hosts: [build-1]\n", "registries: is required"),
    ],
)
def test_bad_documents(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "regops.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_credentials(path, {})
    assert fragment in caught.value.summary()
    assert str(path) in caught.value.summary()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_credentials(tmp_path / "nope.yaml", {})
    assert f"{tmp_path / 'nope.yaml'}: no such file" in caught.value.summary()


def test_the_whole_config_is_validated_on_the_worker_too(config: Path) -> None:
    # The worker runs no access rules, but a config the bot would refuse must not run workers.
    config.write_text(config.read_text() + "access:\n  rolse: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_credentials(config, {})
    (problem,) = caught.value.problems
    assert problem == "access.rolse: unknown key; did you mean `roles`? valid keys: `roles`, `grants`, `approvals`"


def test_config_path_resolution(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"REGOPS_CONFIG": str(config), "REGISTRY_PASSWORD": "pw"}
    assert load_credentials(None, environ).names() == ["filed", "main"]
    assert load_credentials(f"  {config}\n", {}).names() == ["filed", "main"]
    monkeypatch.setenv("HOME", str(config.parent))
    assert load_credentials("~/regops.yaml", {}).names() == ["filed", "main"]
    monkeypatch.chdir(config.parent)
    assert load_credentials(None, {"REGOPS_CONFIG": " "}).names() == ["filed", "main"]
