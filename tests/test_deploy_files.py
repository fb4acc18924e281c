"""The deployment files parse, reference only files and settings that exist, and say what regops does.

Covers docker-compose.yml and everything under deploy/: the Dockerfile, the Kubernetes manifests,
the systemd units, the env files, the example configs and the Slack app manifest. The environment
variables regops reads are found by scanning the source of bot/ and workers/, so a variable added
there must be documented in the env files, and a deployment file cannot set one regops ignores.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
import shutil
import subprocess
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from bot.http.app import SLACK_PATH
from bot.http.registry_events import REGISTRY_EVENTS_PATH
from bot.slack.mrkdwn import SLASH_COMMAND
from workers.kernel.config import CONFIG_ENV, Config, Timeouts, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
BOT_ENV = DEPLOY / "env" / "bot.env.example"
WORKER_ENV = DEPLOY / "env" / "worker.env.example"
EXAMPLE_CONFIG = DEPLOY / "regops.example.yaml"
SLACK_MANIFEST = DEPLOY / "slack-app-manifest.yaml"
HEALTH_PATH = "/healthz"
BOT_PORT = 3000

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _yaml_files() -> list[Path]:
    return sorted([COMPOSE_FILE, *DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


# --- the environment variables regops reads, from its source --------------------------------------

_ENV_RECEIVER = re.compile(r"(?:^|\.)(?:environ|env)$")


def _env_key(node: ast.AST) -> ast.expr | None:
    """The key expression of ``environ.get(K)``, ``environ[K]``, ``getenv(K)``; else None."""
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get":
            return node.args[0] if _ENV_RECEIVER.search(ast.unparse(func.value)) else None
        if (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
            isinstance(func, ast.Name) and func.id == "getenv"
        ):
            return node.args[0]
    if isinstance(node, ast.Subscript) and _ENV_RECEIVER.search(ast.unparse(node.value)):
        return node.slice
    return None


def _params(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = [arg.arg for arg in (*function.args.posonlyargs, *function.args.args)]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


def _string_constants(trees: dict[Path, ast.Module]) -> dict[str, str]:
    """Module-level ``NAME = "VALUE"`` of every module (a name bound to two values is dropped)."""
    found: dict[str, set[str]] = {}
    for tree in trees.values():
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            if (isinstance(target, ast.Name) and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)):
                found.setdefault(target.id, set()).add(value.value)
    return {name: next(iter(values)) for name, values in found.items() if len(values) == 1}


def _walk_with_function(
    node: ast.AST, function: ast.FunctionDef | ast.AsyncFunctionDef | None = None
) -> Iterator[tuple[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
    for child in ast.iter_child_nodes(node):
        inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
        yield child, inner
        yield from _walk_with_function(child, inner)


@functools.cache
def env_names_read(package: str) -> frozenset[str]:
    """Every environment variable name the package's source reads.

    Direct reads with a literal or a module constant as the key, and calls with a literal to a
    helper that reads the variable its parameter names (``secret("SLACK_BOT_TOKEN")``). A WSGI
    ``environ`` (a function taking ``start_response``) is a request, not the process environment.
    """
    trees = {path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
             for path in sorted((ROOT / package).rglob("*.py"))}
    constants = _string_constants(trees)
    names: set[str] = set()
    helpers: dict[str, int] = {}
    for tree in trees.values():
        for node, function in _walk_with_function(tree):
            key = _env_key(node)
            if key is None or (function is not None and "start_response" in _params(function)):
                continue
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
            elif isinstance(key, ast.Name) and function is not None and key.id in _params(function):
                helpers[function.name] = _params(function).index(key.id)
            elif isinstance(key, ast.Name) and key.id in constants:
                names.add(constants[key.id])
    for tree in trees.values():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in helpers and len(node.args) > helpers[called]:
                arg = node.args[helpers[called]]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
    return frozenset(name for name in names if _NAME.fullmatch(name))


def _read_by_regops() -> set[str]:
    return set(env_names_read("bot") | env_names_read("workers"))


def _configmap_config() -> tuple[str, str]:
    for path, doc in _k8s_objects():
        if doc["kind"] == "ConfigMap" and "regops.yaml" in doc.get("data", {}):
            return str(path.relative_to(ROOT)), doc["data"]["regops.yaml"]
    raise AssertionError("no ConfigMap under deploy/k8s holds regops.yaml")


def _example_configs() -> dict[str, Config]:
    """Every regops config the deployment files carry, parsed by regops itself."""
    configs = {str(EXAMPLE_CONFIG.relative_to(ROOT)): load_config(EXAMPLE_CONFIG)}
    for service in _regops_services().values():
        for source, target in _bind_mounts(service):
            if target == _service_env(service).get(CONFIG_ENV):
                configs[str(source.relative_to(ROOT))] = load_config(source)
    name, text = _configmap_config()
    configs[name] = parse_config(yaml.safe_load(text))
    return configs


def _password_env_names() -> set[str]:
    return {registry.password_env for config in _example_configs().values()
            for registry in config.registries.values() if registry.password_env}


def _events_token_env_names() -> set[str]:
    """The variables the example configs say hold a registry's events token (the bot reads them)."""
    return {registry.events_token_env for config in _example_configs().values()
            for registry in config.registries.values() if registry.events_token_env}


# --- env files ------------------------------------------------------------------------------------

_ENV_LINE = re.compile(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)")


def _env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """(settings the file sets, every name it documents: set or shown commented out)."""
    settings: dict[str, str] = {}
    documented: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.fullmatch(line.strip())
        if match:
            documented.add(match.group(2))
            if not match.group(1):
                settings[match.group(2)] = match.group(3)
    return settings, documented


@pytest.mark.parametrize("path", [BOT_ENV, WORKER_ENV], ids=lambda p: p.name)
def test_env_files_hold_only_comments_and_assignments(path: Path) -> None:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        assert not stripped or stripped.startswith("#") or _ENV_LINE.fullmatch(stripped), (
            f"{path.name}:{number}: not NAME=value or a comment: {line!r}")


def test_the_source_scan_finds_what_the_readme_documents() -> None:
    # The scan must not go blind: the README's environment table and the config variable are in it.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", readme, flags=re.MULTILINE))
    assert table, "the README's environment table is gone"
    assert table | {CONFIG_ENV} <= _read_by_regops()


def test_every_variable_the_bot_reads_is_documented_in_bot_env() -> None:
    _, documented = _env_file(BOT_ENV)
    missing = (env_names_read("bot") | _events_token_env_names()) - documented
    assert not missing, f"bot/ reads {sorted(missing)}; describe them in {BOT_ENV.relative_to(ROOT)}"


def test_every_variable_a_worker_reads_is_documented_in_worker_env() -> None:
    _, documented = _env_file(WORKER_ENV)
    missing = (env_names_read("workers") | _password_env_names()) - documented
    assert not missing, f"workers read {sorted(missing)}; describe them in {WORKER_ENV.relative_to(ROOT)}"


# --- what every deployment file sets --------------------------------------------------------------

def _compose() -> dict[str, Any]:
    (doc,) = _documents(COMPOSE_FILE)
    return doc


def _regops_services() -> dict[str, dict[str, Any]]:
    """Compose services built from this repository: the ones running regops."""
    return {name: service for name, service in _compose()["services"].items() if "build" in service}


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    result = {str(key): "" if value is None else str(value) for key, value in environment.items()}
    for env_file in _env_files_of(service):
        result.update(_env_file(env_file)[0])
    return result


def _env_files_of(service: dict[str, Any]) -> list[Path]:
    entries = service.get("env_file") or []
    entries = [entries] if isinstance(entries, (str, dict)) else entries
    return [ROOT / (entry["path"] if isinstance(entry, dict) else entry) for entry in entries]


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of the service's bind mounts of repository files."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            source, target = (volume.split(":") + [""])[:2]
        if source.startswith("."):
            mounts.append(((COMPOSE_FILE.parent / source).resolve(), target))
    return mounts


def _k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in _documents(path)]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    return doc["spec"] if doc["kind"] == "Pod" else None


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _k8s_find(kind: str, name: str) -> dict[str, Any] | None:
    for _, doc in _k8s_objects():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    return None


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {**(secret.get("data") or {}), **(secret.get("stringData") or {})}


def _container_env_names(container: dict[str, Any]) -> set[str]:
    names = {item["name"] for item in container.get("env", [])}
    for source in container.get("envFrom", []):
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in source:
                referenced = _k8s_find(kind, source[key]["name"])
                assert referenced is not None, f"envFrom names an undefined {kind} {source[key]['name']}"
                data = _secret_data(referenced) if kind == "Secret" else referenced.get("data", {})
                names |= {source.get("prefix", "") + key_name for key_name in data}
    return names


def _regops_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(object name, pod spec, container) of every Kubernetes container running the regops image."""
    found = []
    for _, doc in _k8s_objects():
        pod = _pod_spec(doc)
        if pod is None:
            continue
        for container in _containers(pod):
            if "regops" in container["image"].rsplit("/", 1)[-1]:
                found.append((str(doc["metadata"]["name"]), pod, container))
    return found


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as section → key → values (keys may repeat), continuation lines joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path.name}: stray line {line!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _unit_env_names(unit: dict[str, dict[str, list[str]]]) -> set[str]:
    names = set()
    for value in unit.get("Service", {}).get("Environment", []):
        names |= {word.split("=", 1)[0] for word in shlex.split(value)}
    return names


def _dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name → its instructions (keyword, arguments), continuation lines joined."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            current = stages.setdefault(name, [])
        current.append((keyword, arguments.strip()))
    return stages


def _dockerfile_env_names() -> set[str]:
    names = set()
    for instructions in _dockerfile_stages().values():
        for keyword, arguments in instructions:
            if keyword == "ENV":
                words = shlex.split(arguments)
                names |= ({word.split("=", 1)[0] for word in words} if "=" in words[0] else {words[0]})
    return names


def _settings_by_file() -> dict[str, set[str]]:
    settings: dict[str, set[str]] = {}
    for name, service in _regops_services().items():
        settings[f"docker-compose.yml: {name}"] = set(_service_env(service))
    for object_name, _, container in _regops_containers():
        settings[f"k8s {object_name}/{container['name']}"] = _container_env_names(container)
    for path in sorted(SYSTEMD.glob("*.service")):
        settings[str(path.relative_to(ROOT))] = _unit_env_names(_unit(path))
    for path in (BOT_ENV, WORKER_ENV):
        settings[str(path.relative_to(ROOT))] = set(_env_file(path)[0])
    settings[str(DOCKERFILE.relative_to(ROOT))] = _dockerfile_env_names()
    return settings


def test_deployment_files_set_only_variables_regops_reads() -> None:
    known = _read_by_regops() | _password_env_names() | _events_token_env_names()
    unknown = {where: sorted(names - known) for where, names in _settings_by_file().items() if names - known}
    assert not unknown, f"variables regops never reads: {unknown}"


def test_the_scan_sees_regops_containers_and_services() -> None:
    # The check above would pass on nothing: make sure it has something to look at.
    settings = _settings_by_file()
    assert any(where.startswith("k8s ") for where in settings)
    assert any(where.startswith("docker-compose.yml") for where in settings)
    assert settings[str(BOT_ENV.relative_to(ROOT))] and settings[str(WORKER_ENV.relative_to(ROOT))]


# --- YAML parses ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses(path: Path) -> None:
    documents = _documents(path)
    assert documents and all(isinstance(doc, dict) for doc in documents), f"{path}: no mapping documents"


def test_example_configs_pass_regops_validation() -> None:
    # deploy/regops.example.yaml, the compose trial's config and the ConfigMap's, each parsed by
    # regops's own validation (a ConfigError lists every problem).
    configs = _example_configs()
    assert len(configs) == 3, sorted(configs)
    for name, config in configs.items():
        assert config.registries and config.hosts, name


# --- docker-compose.yml ---------------------------------------------------------------------------

def test_compose_file_is_valid_for_debians_docker_compose_v1() -> None:
    """Debian packages only compose v1 (1.29), which refuses v2-only keys such as a top-level `name:`."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose (Debian's package) is not installed: deploy/local/setup.sh installs it"
    env = {"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": "x", "SLACK_BOT_TOKEN": "xoxb-x",
           "SLACK_SIGNING_SECRET": "x", "DOCKER_GID": "0", "REGISTRY_EVENTS_TOKEN": "t" * 32}
    result = subprocess.run([tool, "-f", str(COMPOSE_FILE), "config", "--quiet"], capture_output=True,
                            text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "name" not in yaml.safe_load(COMPOSE_FILE.read_text())  # compose v2 alone takes it


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def _option_value(words: list[str], option: str) -> str | None:
    position = words.index(option) + 1 if option in words else len(words)
    return words[position] if position < len(words) else None


def test_compose_redis_switches_aof_on_and_sets_a_password_on_its_command_line() -> None:
    redis = _compose()["services"]["redis"]
    words = _command(redis)
    assert words[:1] == ["redis-server"]
    assert _option_value(words, "--appendonly") == "yes"
    assert _option_value(words, "--requirepass"), "redis has no --requirepass value"


def test_compose_runs_redis_the_bot_a_worker_and_a_registry() -> None:
    services = _compose()["services"]
    commands = {name: _command(service) for name, service in _regops_services().items()}
    assert any(words[:1] == ["serve"] for words in commands.values()), commands
    workers = [name for name, words in commands.items() if "--host" in words]
    assert workers, "no worker service"
    for name in workers:
        assert "/var/run/docker.sock" in str(services[name].get("volumes")), f"{name} has no Docker socket"
    registry = next(s for s in services.values() if str(s.get("image", "")).startswith("registry:"))
    assert registry["environment"]["REGISTRY_AUTH"] == "htpasswd"


def test_compose_references_only_files_that_exist() -> None:
    for name, service in _compose()["services"].items():
        build = service.get("build")
        if build is not None:
            build = {"context": build} if isinstance(build, str) else build
            context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
            assert context.is_dir(), f"{name}: build context {context} is missing"
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
            if "target" in build:
                assert dockerfile == DOCKERFILE and build["target"] in _dockerfile_stages(), (
                    f"{name}: no stage {build['target']} in {dockerfile}")
        for env_file in _env_files_of(service):
            assert env_file.is_file(), f"{name}: env_file {env_file} is missing"
        for source, _ in _bind_mounts(service):
            assert source.exists(), f"{name}: mounts {source}, which is missing"
            assert source.is_relative_to(ROOT), f"{name}: mounts {source}, outside the repository"


def test_compose_regops_services_mount_the_config_regops_is_told_to_read() -> None:
    for name, service in _regops_services().items():
        config_path = _service_env(service).get(CONFIG_ENV)
        assert config_path, f"{name}: no {CONFIG_ENV}"
        mounted = {target for _, target in _bind_mounts(service)}
        assert config_path in mounted, f"{name}: {config_path} is not mounted"


def _registry_service() -> dict[str, Any]:
    for service in _compose()["services"].values():
        if str(service.get("image", "")).startswith("registry:"):
            return dict(service)
    raise AssertionError("docker-compose.yml runs no registry")


def _compose_worker() -> tuple[dict[str, Any], Config]:
    """The compose worker and the config it reads."""
    worker = next(s for s in _regops_services().values() if "--host" in _command(s))
    config_path = _service_env(worker)[CONFIG_ENV]
    (config_file,) = [source for source, target in _bind_mounts(worker) if target == config_path]
    return worker, load_config(config_file)


def test_compose_config_reaches_the_registry_through_its_published_port() -> None:
    worker, config = _compose_worker()
    # "127.0.0.1:5000:5000" or "5000:5000": the host port is the one before the container's.
    host_ports = {str(port).split(":")[-2] for port in _registry_service()["ports"]}
    server = config.registries[config.default_registry].server
    host, port = server.rsplit(":", 1)
    assert host.startswith("127.") and port in host_ports, (
        f"{server} is not the registry as this host publishes it (ports {sorted(host_ports)})")
    assert _option_value(_command(worker), "--host") in config.hosts


def test_compose_registry_account_logs_in_with_the_workers_password(tmp_path: Path) -> None:
    registry = _registry_service()
    htpasswd_path = registry["environment"]["REGISTRY_AUTH_HTPASSWD_PATH"]
    (source,) = [src for src, target in _bind_mounts(registry) if target == htpasswd_path]
    lines = source.read_text(encoding="utf-8").splitlines()
    entries = dict(line.split(":", 1) for line in lines if line.strip())
    worker, config = _compose_worker()
    account = config.registries[config.default_registry]
    assert account.username in entries, f"{source.name} has no entry for {account.username}"
    hashed = entries[account.username]
    assert hashed.startswith("$2y$"), "the registry accepts bcrypt entries only (htpasswd -B)"
    password = _service_env(worker)[account.password_env or ""]
    assert _bcrypt_matches(password, hashed, tmp_path), (
        "the worker's registry password does not match deploy/compose/htpasswd")


def _compose_bot() -> tuple[str, dict[str, Any], Config]:
    """The compose bot's service name, the service, and the config it reads."""
    name, bot = next((n, s) for n, s in _regops_services().items() if _command(s)[:1] == ["serve"])
    config_path = _service_env(bot)[CONFIG_ENV]
    (config_file,) = [source for source, target in _bind_mounts(bot) if target == config_path]
    return name, bot, load_config(config_file)


def _registry_endpoints() -> list[dict[str, Any]]:
    """The compose registry's notification endpoints (Distribution reads the variable as YAML)."""
    endpoints = yaml.safe_load(_registry_service()["environment"]["REGISTRY_NOTIFICATIONS_ENDPOINTS"])
    assert isinstance(endpoints, list) and endpoints, "REGISTRY_NOTIFICATIONS_ENDPOINTS is no YAML list"
    return endpoints


_BEARER_VARIABLE = re.compile(r"Bearer \$\{([A-Z][A-Z0-9_]*)\}")


def test_compose_registry_notifies_the_bot_with_the_token_the_bots_config_names() -> None:
    name, bot, config = _compose_bot()
    (endpoint,) = _registry_endpoints()
    url = urllib.parse.urlsplit(endpoint["url"])
    port = _option_value(_command(bot), "--port") or str(BOT_PORT)
    assert (url.scheme, url.hostname, str(url.port), url.path) == ("http", name, port, REGISTRY_EVENTS_PATH)
    (header,) = endpoint["headers"]["Authorization"]
    match = _BEARER_VARIABLE.fullmatch(header)
    assert match, f"the registry's Authorization header is not `Bearer ${{VARIABLE}}`: {header!r}"
    registry = config.registries[config.default_registry]
    assert registry.events_enabled and registry.events_token_env, "the compose config's registry sends no events"
    # The bot's variable is set from the same compose variable the registry's header is made of.
    assert _service_env(bot)[registry.events_token_env].startswith("${" + match.group(1)), (
        f"the bot's {registry.events_token_env} is not the registry's ${{{match.group(1)}}}")
    assert set(endpoint["ignore"]["actions"]) == {"pull", "mount"}


def test_compose_events_token_is_required_and_reaches_both_sides() -> None:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose (Debian's package) is not installed: deploy/local/setup.sh installs it"
    env = {"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": "x", "SLACK_BOT_TOKEN": "xoxb-x",
           "SLACK_SIGNING_SECRET": "x", "DOCKER_GID": "0"}
    missing = subprocess.run([tool, "-f", str(COMPOSE_FILE), "config", "--quiet"], capture_output=True,
                             text=True, env=env, timeout=120, check=False)
    assert missing.returncode != 0 and "REGISTRY_EVENTS_TOKEN" in missing.stderr
    token = "compose-events-token-0123456789"
    rendered = subprocess.run([tool, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True,
                              env={**env, "REGISTRY_EVENTS_TOKEN": token}, timeout=120, check=True)
    services = yaml.safe_load(rendered.stdout)["services"]
    name, _, config = _compose_bot()
    assert services[name]["environment"][config.registries[config.default_registry].events_token_env] == token
    registry = next(s for s in services.values() if str(s.get("image", "")).startswith("registry:"))
    (endpoint,) = yaml.safe_load(registry["environment"]["REGISTRY_NOTIFICATIONS_ENDPOINTS"])
    assert endpoint["headers"]["Authorization"] == [f"Bearer {token}"]


def _readme_yaml_blocks() -> list[Any]:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)]


def test_the_readme_shows_the_registry_snippet_and_the_regops_side_that_agree() -> None:
    blocks = _readme_yaml_blocks()
    registry_side = [b for b in blocks if isinstance(b, dict) and "notifications" in b
                     and "endpoints" in (b["notifications"] or {})]
    assert registry_side, "deploy/README.md shows no registry `notifications: endpoints:` snippet"
    (endpoint,) = registry_side[0]["notifications"]["endpoints"]
    assert urllib.parse.urlsplit(endpoint["url"]).path == REGISTRY_EVENTS_PATH
    assert endpoint["headers"]["Authorization"][0].startswith("Bearer ")
    assert set(endpoint["ignore"]["actions"]) == {"pull", "mount"}
    regops_side = [b for b in blocks if isinstance(b, dict) and "registries" in b]
    assert regops_side, "deploy/README.md shows no regops `registries:` entry naming events_token_env"
    entry = next(iter(regops_side[0]["registries"].values()))
    assert entry["events_token_env"] in _env_file(BOT_ENV)[1], "the README's variable is not in bot.env"
    # The same keys as the compose registry's endpoint, so the two stay one recipe.
    assert set(endpoint) == set(_registry_endpoints()[0])


def test_the_example_config_has_an_events_token_and_routes() -> None:
    config = load_config(EXAMPLE_CONFIG)
    assert config.registries[config.default_registry].events_token_env == "REGISTRY_EVENTS_TOKEN"
    assert config.routes and {kind for route in config.routes for kind in route.events} == {"push", "delete"}


def _bcrypt_matches(password: str, hashed: str, tmp_path: Path) -> bool:
    """Check with the C library's crypt(3) where Python still has it, else with htpasswd -v."""
    checked = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # removed in Python 3.13
        checked = crypt.crypt(password, hashed)
    except ImportError:
        pass
    if checked is not None:
        return bool(checked == hashed)
    if shutil.which("htpasswd") is None:
        pytest.skip("neither crypt(3) with bcrypt nor htpasswd is available to check the password")
    entry = tmp_path / "htpasswd"
    entry.write_text(f"user:{hashed}\n", encoding="utf-8")
    answer = subprocess.run(["htpasswd", "-vb", str(entry), "user", password],
                            check=False, capture_output=True)
    return answer.returncode == 0


# --- Dockerfile -----------------------------------------------------------------------------------

def test_dockerfile_builds_bot_and_worker_from_python_slim_as_non_root() -> None:
    stages = _dockerfile_stages()
    assert {"bot", "worker"} <= set(stages)
    assert stages["base"][0] == ("FROM", "python:3.11-slim AS base")
    installs = [a.split("pip install", 1)[1].split("&&")[0].split() for k, a in stages["base"]
                if k == "RUN" and "pip install" in a]
    assert any(words[-1:] == ["."] for words in installs), "the image does not `pip install .`"
    for name in ("bot", "worker"):
        users = [a for k, a in stages[name] if k == "USER"]
        assert users, f"stage {name} runs as root"
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"stage {name}: USER {users[-1]} is not a non-root uid"
    healthchecks = [a for k, a in stages["bot"] if k == "HEALTHCHECK"]
    assert healthchecks and HEALTH_PATH in healthchecks[-1] and "urllib" in healthchecks[-1]
    assert list(stages)[-1] == "bot", "a build without --target should give the bot"


def test_dockerfile_copies_only_files_that_exist() -> None:
    for name, instructions in _dockerfile_stages().items():
        for keyword, arguments in instructions:
            if keyword in ("COPY", "ADD") and "--from" not in arguments:
                *sources, _ = arguments.split()
                for source in sources:
                    assert (ROOT / source).exists(), f"stage {name}: COPY {source}, which is missing"


# --- Kubernetes -----------------------------------------------------------------------------------

def test_k8s_objects_are_well_formed_and_in_one_namespace() -> None:
    objects = _k8s_objects()
    namespaces = [doc["metadata"]["name"] for _, doc in objects if doc["kind"] == "Namespace"]
    assert len(namespaces) == 1
    for path, doc in objects:
        where = f"{path.name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), where
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespaces[0], where
        pod = _pod_spec(doc)
        if pod is not None:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), doc["metadata"]["name"]


def _pod_templates() -> list[dict[str, Any]]:
    return [doc["spec"]["template"] for _, doc in _k8s_objects() if _pod_spec(doc) is not None]


def test_k8s_references_only_objects_keys_and_ports_that_exist() -> None:
    for _, doc in _k8s_objects():
        pod = _pod_spec(doc)
        if pod is None:
            continue
        for volume in pod.get("volumes", []):
            for kind, key, name_key in (("ConfigMap", "configMap", "name"),
                                        ("Secret", "secret", "secretName")):
                if key in volume:
                    referenced = _k8s_find(kind, volume[key][name_key])
                    assert referenced is not None, f"volume {volume['name']}: no such {kind}"
                    data = _secret_data(referenced) if kind == "Secret" else referenced.get("data", {})
                    for item in volume[key].get("items", []):
                        assert item["key"] in data, f"volume {volume['name']}: no key {item['key']}"
        claims = {claim["metadata"]["name"] for claim in doc["spec"].get("volumeClaimTemplates", [])}
        for container in _containers(pod):
            _container_env_names(container)  # asserts every envFrom source exists
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = _k8s_find("Secret", ref["name"])
                    assert secret is not None and ref["key"] in _secret_data(secret), f"{item['name']}: {ref}"
            volumes = {volume["name"] for volume in pod.get("volumes", [])} | claims
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{container['name']} mounts an undefined {mount['name']}"
    for _, doc in _k8s_objects():
        if doc["kind"] != "Service":
            continue
        selector = doc["spec"]["selector"].items()
        selected = [t for t in _pod_templates() if selector <= t["metadata"]["labels"].items()]
        assert selected, f"Service {doc['metadata']['name']} selects no pods"
        ports = {port.get("name"): port["containerPort"] for t in selected
                 for c in t["spec"]["containers"] for port in c.get("ports", [])}
        for port in doc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in ports or target in ports.values(), f"Service {doc['metadata']['name']}: {target}"


def _bot_deployment() -> tuple[dict[str, Any], dict[str, Any]]:
    for _, doc in _k8s_objects():
        pod = _pod_spec(doc)
        for container in _containers(pod) if pod and doc["kind"] == "Deployment" else []:
            if "regops" in container["image"] and container.get("args", [])[:1] == ["serve"]:
                return doc, container
    raise AssertionError("no Deployment runs `regops serve`")


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


def test_k8s_bot_runs_two_replicas_probed_on_healthz() -> None:
    deployment, container = _bot_deployment()
    assert deployment["spec"]["replicas"] >= 2
    for probe in ("livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == HEALTH_PATH and _port_number(container, check["port"]) == BOT_PORT, probe
    assert _option_value(container["args"], "--port") in (None, str(BOT_PORT))


def test_k8s_bot_is_locked_down_and_sized() -> None:
    deployment, container = _bot_deployment()
    pod_security = deployment["spec"]["template"]["spec"].get("securityContext", {})
    security = {**pod_security, **container.get("securityContext", {})}
    assert security.get("runAsNonRoot") is True and security.get("runAsUser", 0) != 0
    assert security.get("readOnlyRootFilesystem") is True
    assert security.get("allowPrivilegeEscalation") is False
    assert container["resources"].get("requests") and container["resources"].get("limits")


def test_k8s_bot_reads_the_configmap_config_where_regops_config_points() -> None:
    deployment, container = _bot_deployment()
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    config_path = PurePosixPath(env[CONFIG_ENV])
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume and config_path.parent == PurePosixPath(mount["mountPath"]):
            paths = {item["path"]: item["key"] for item in volume["configMap"].get("items", [])}
            key = paths.get(config_path.name, config_path.name)
            configmap = _k8s_find("ConfigMap", volume["configMap"]["name"])
            assert configmap is not None
            parse_config(yaml.safe_load(configmap["data"][key]))
            return
    raise AssertionError(f"nothing is mounted at {config_path}")


def _redis_statefulset() -> tuple[dict[str, Any], dict[str, Any]]:
    for _, doc in _k8s_objects():
        pod = _pod_spec(doc)
        for container in pod["containers"] if pod else []:
            if container["image"].split(":")[0].rsplit("/", 1)[-1] == "redis":
                return doc, container
    raise AssertionError("no Redis workload under deploy/k8s")


def test_k8s_redis_has_aof_a_password_from_a_secret_and_a_volume() -> None:
    workload, container = _redis_statefulset()
    words = [*container.get("command", []), *container.get("args", [])]
    assert _option_value(words, "--appendonly") == "yes"
    password = _option_value(words, "--requirepass") or ""
    variable = re.fullmatch(r"\$\(([A-Z_][A-Z0-9_]*)\)", password)
    assert variable, f"--requirepass {password!r} is not a $(VARIABLE) from the container's env"
    (source,) = [item for item in container["env"] if item["name"] == variable.group(1)]
    assert "secretKeyRef" in source["valueFrom"]
    claims = {claim["metadata"]["name"] for claim in workload["spec"].get("volumeClaimTemplates", [])}
    claims |= {v["name"] for v in workload["spec"]["template"]["spec"].get("volumes", [])
               if "persistentVolumeClaim" in v}
    data_dir = _option_value(words, "--dir") or "/data"
    assert any(m["name"] in claims and m["mountPath"] == data_dir for m in container["volumeMounts"]), (
        f"Redis's data directory {data_dir} is not on a persistent volume")


def test_k8s_bot_reaches_redis_by_its_service_with_its_password() -> None:
    _, bot = _bot_deployment()
    secret_names = [source["secretRef"]["name"] for source in bot.get("envFrom", []) if "secretRef" in source]
    urls = [_secret_data(_k8s_find("Secret", name) or {})["REDIS_URL"] for name in secret_names
            if "REDIS_URL" in _secret_data(_k8s_find("Secret", name) or {})]
    assert len(urls) == 1, "the bot's REDIS_URL should come from its Secret"
    url = urllib.parse.urlsplit(urls[0])
    service = _k8s_find("Service", url.hostname or "")
    assert service is not None, f"REDIS_URL names {url.hostname}, which is no Service"
    assert (url.port or 6379) in {port["port"] for port in service["spec"]["ports"]}
    workload, redis_container = _redis_statefulset()
    assert service["spec"]["selector"].items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    words = [*redis_container.get("command", []), *redis_container.get("args", [])]
    variable = (_option_value(words, "--requirepass") or "")[2:-1]
    (source,) = [item for item in redis_container["env"] if item["name"] == variable]
    ref = source["valueFrom"]["secretKeyRef"]
    redis_password = _secret_data(_k8s_find("Secret", ref["name"]) or {})[ref["key"]]
    assert urllib.parse.unquote(url.password or "") == redis_password, "REDIS_URL's password is not Redis's"


def test_k8s_runs_no_worker() -> None:
    # Workers belong next to their Docker engine, under systemd on each Docker host.
    for name, _, container in _regops_containers():
        words = [*container.get("command", []), *container.get("args", [])]
        assert "worker" not in words and "--host" not in words, f"{name} runs a worker"


# --- systemd --------------------------------------------------------------------------------------

WORKER_UNIT = SYSTEMD / "regops-worker@.service"
BOT_UNIT = SYSTEMD / "regops-bot.service"


def _seconds(value: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*([a-z]*)", value):
        total += int(number) * units[unit]
    return total


def _exec_start(unit: dict[str, dict[str, list[str]]]) -> list[str]:
    (command,) = unit["Service"]["ExecStart"]
    return shlex.split(command.lstrip("@-:+!"))


def test_worker_unit_runs_one_hosts_worker_and_stops_the_whole_group() -> None:
    unit = _unit(WORKER_UNIT)
    service = unit["Service"]
    words = _exec_start(unit)
    assert Path(words[0]).name == "regops" and words[1:] == ["worker", "--host", "%i"], words
    assert service["KillMode"] == ["control-group"]
    assert service["EnvironmentFile"] == ["/etc/regops/worker.env"]
    assert service["Restart"] == ["on-failure"]
    assert "docker.service" in " ".join(unit["Unit"]["After"]).split()
    longest_job = max(Timeouts().for_action(action) for action in ("push", "pull", "tag", "login"))
    assert _seconds(service["TimeoutStopSec"][-1]) > longest_job, "systemd would kill a job it lets run"


def test_worker_unit_hardening_keeps_the_docker_socket_usable() -> None:
    service = _unit(WORKER_UNIT)["Service"]
    assert service.get("User", ["root"])[-1] != "root"
    assert "docker" in " ".join(service.get("SupplementaryGroups", [])).split()
    assert service.get("PrivateUsers", ["no"])[-1] in ("no", "false"), "PrivateUsers hides the docker group"
    assert service.get("PrivateNetwork", ["no"])[-1] in ("no", "false"), "the worker needs the network"
    families = " ".join(service.get("RestrictAddressFamilies", ["AF_UNIX"])).split()
    assert "AF_UNIX" in families and not families[0].startswith("~")
    assert service["NoNewPrivileges"] == ["yes"] and service["ProtectSystem"] == ["strict"]


def test_bot_unit_runs_serve_unprivileged() -> None:
    unit = _unit(BOT_UNIT)
    service = unit["Service"]
    words = _exec_start(unit)
    assert Path(words[0]).name == "regops" and words[1] == "serve", words
    assert service["EnvironmentFile"] == ["/etc/regops/bot.env"]
    assert service.get("DynamicUser") == ["yes"] or service.get("User", ["root"])[-1] != "root"
    assert service["NoNewPrivileges"] == ["yes"] and service["ProtectSystem"] == ["strict"]
    assert service["Restart"] == ["on-failure"]


# --- the Slack app manifest -----------------------------------------------------------------------

def _slack_manifest() -> dict[str, Any]:
    (doc,) = _documents(SLACK_MANIFEST)
    return doc


def test_slack_manifest_uses_slacks_schema() -> None:
    manifest = _slack_manifest()
    assert set(manifest) <= {"_metadata", "display_information", "features", "oauth_config", "settings"}
    assert {"display_information", "features", "oauth_config", "settings"} <= set(manifest)
    display = manifest["display_information"]
    assert 0 < len(display["name"]) <= 35 and len(display.get("description", "")) <= 140
    assert manifest["features"]["bot_user"]["display_name"]


def test_slack_manifest_has_the_slash_command_and_interactivity() -> None:
    manifest = _slack_manifest()
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == SLASH_COMMAND
    assert command["description"] and command["usage_hint"]
    assert urllib.parse.urlsplit(command["url"]).scheme == "https" and command["url"].endswith(SLACK_PATH)
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True and interactivity["request_url"].endswith(SLACK_PATH)


def test_slack_manifest_socket_mode_on_and_no_org_deploy_or_token_rotation() -> None:
    settings = _slack_manifest()["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["org_deploy_enabled"] is False and settings["token_rotation_enabled"] is False


def test_slack_manifest_asks_for_exactly_the_scopes_regops_uses() -> None:
    scopes = _slack_manifest()["oauth_config"]["scopes"]
    assert sorted(scopes["bot"]) == ["chat:write", "commands", "usergroups:read"]
    assert not scopes.get("user"), "regops acts as its bot, never as a user"


def test_two_quick_starts_get_their_own_docker_exec_root() -> None:
    """Defect: quickstart.sh always used --exec-root /run/regops-local-docker, so two quick starts collided."""
    script = (ROOT / "deploy" / "local" / "quickstart.sh").read_text()
    assignment = next(line.strip() for line in script.splitlines() if line.strip().startswith("EXEC_ROOT="))
    assert '--exec-root "$EXEC_ROOT"' in script

    def exec_root(state: str) -> str:
        result = subprocess.run(["bash", "-c", f'STATE={shlex.quote(state)}; {assignment}; echo "$EXEC_ROOT"'],
                                capture_output=True, text=True, check=True, timeout=10)
        return result.stdout.strip()

    first, second = exec_root("/srv/a/regops/.local"), exec_root("/srv/b/regops/.local")
    assert first != second and first == exec_root("/srv/a/regops/.local")
    assert all(len(root) < 60 for root in (first, second))  # room for the sockets under it
