"""The dependency direction the architecture promises, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[path.name] = names
    return found


def test_the_packages_exist() -> None:
    assert len(_imports("bot")) >= 10 and len(_imports("workers")) >= 6


@pytest.mark.parametrize("module,names", sorted(_imports("bot").items()))
def test_bot_uses_only_the_contracts_of_workers_and_never_docker(module: str, names: set[str]) -> None:
    offending = {n for n in names if (n == "workers" or n.startswith("workers.")) and
                 not n.startswith("workers.contracts")}
    offending |= {n for n in names if n == "docker" or n.startswith("docker.")}
    assert not offending, f"bot/{module} imports {sorted(offending)}"


@pytest.mark.parametrize("module,names", sorted(_imports("workers").items()))
def test_workers_never_import_the_bot_or_slack(module: str, names: set[str]) -> None:
    offending = {n for n in names if n.split(".")[0] in {"bot", "slack_bolt", "slack_sdk"}}
    assert not offending, f"workers/{module} imports {sorted(offending)}"


def test_contracts_use_the_standard_library_only() -> None:
    import sys

    names = _imports("workers")["contracts.py"]
    third_party = {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"__future__"}
    assert not third_party
