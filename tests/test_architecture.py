"""The dependency direction the architecture promises, checked on the source."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "workers.kernel"


def _imports(package: str) -> dict[str, set[str]]:
    """Every module under ``package`` (by its path inside it) and the names it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(ROOT / package))] = names
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_packages_exist() -> None:
    assert len(_imports("bot")) >= 10 and len(_imports("workers")) >= 6
    assert len(_imports("workers/kernel")) >= 6


@pytest.mark.parametrize("module,names", sorted(_imports("bot").items()))
def test_bot_uses_only_the_kernel_of_workers_and_never_docker(module: str, names: set[str]) -> None:
    offending = {n for n in names if _within(n, "workers") and not _within(n, KERNEL)}
    offending |= {n for n in names if _within(n, "docker")}
    assert not offending, f"bot/{module} imports {sorted(offending)}"


@pytest.mark.parametrize("module,names", sorted(_imports("workers").items()))
def test_workers_never_import_the_bot_or_slack(module: str, names: set[str]) -> None:
    offending = {n for n in names if n.split(".")[0] in {"bot", "slack_bolt", "slack_sdk"}}
    assert not offending, f"workers/{module} imports {sorted(offending)}"


@pytest.mark.parametrize("module,names", sorted(_imports("workers/kernel").items()))
def test_the_kernel_uses_the_standard_library_yaml_and_croniter_only(module: str, names: set[str]) -> None:
    """The kernel is what both sides load: nothing of rq, redis, docker or Slack, nothing outside it.

    croniter (freeze windows) is a dependency of rq, so both sides have it already."""
    outside = {n for n in names if _within(n, "workers") and not _within(n, KERNEL)}
    third_party = {n.split(".")[0] for n in names if not _within(n, "workers")}
    third_party -= set(sys.stdlib_module_names) | {"__future__", "yaml", "croniter"}
    assert not outside and not third_party, f"workers/kernel/{module} imports {sorted(outside | third_party)}"


@pytest.mark.parametrize("module,names", sorted(
    (module, names) for module, names in _imports("bot").items() if module.startswith("core/")
))
def test_the_core_imports_no_front_end(module: str, names: set[str]) -> None:
    """The core speaks neither Slack nor HTTP; the front ends depend on it, never the other way."""
    front_ends = ("bot.slack", "bot.http", "bot.console", "slack_bolt", "slack_sdk", "gunicorn", "tornado",
                  "prometheus_client")
    offending = {n for n in names if any(_within(n, front) for front in front_ends)}
    assert not offending, f"bot/{module} imports {sorted(offending)}"


@pytest.mark.parametrize("module,names", sorted(_imports("workers/registry").items()))
def test_the_registry_client_speaks_http_only(module: str, names: set[str]) -> None:
    """Promote, delete, rollback, tags and inspect need no Docker engine and run no CLI tool (skopeo, crane…)."""
    offending = {n for n in names if n.split(".")[0] in {"docker", "subprocess", "rq", "redis"}}
    offending |= {n for n in names if _within(n, "workers") and not (
        _within(n, KERNEL) or _within(n, "workers.registry") or n.split(".")[:2] in (["workers", "errors"],
                                                                                     ["workers", "credentials"]))}
    assert not offending, f"workers/registry/{module} imports {sorted(offending)}"


def test_the_registry_package_exists() -> None:
    assert {"client.py", "auth.py", "manifests.py", "copy.py", "errors.py"} <= set(_imports("workers/registry"))
