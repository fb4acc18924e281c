"""Finding and reading the config file: the path, the YAML (duplicate keys are problems too), the model.

Both sides load the config through here: the bot (with its chat identities) and every
worker, so a path, a ``~`` or stray whitespace means the same to each.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml

from workers.kernel.config.document import parse_config
from workers.kernel.config.identities import WORDS, IdentityRules
from workers.kernel.config.model import Config
from workers.kernel.errors import ConfigError

CONFIG_ENV = "REGOPS_CONFIG"
DEFAULT_CONFIG_PATH = "regops.yaml"


class _Loader(yaml.SafeLoader):
    """A safe loader that records duplicate keys, which plain YAML loading silently drops."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    self.duplicates.append(
                        f"line {key_node.start_mark.line + 1}: duplicate key `{key_node.value}`; "
                        "give each key once (the earlier value would be ignored)"
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _read(source: str) -> str:
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        ways = f"give --config PATH, set ${CONFIG_ENV}, or create ./{DEFAULT_CONFIG_PATH}"
        raise ConfigError([f"{source}: no such file; {ways}"], source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError([f"{source}: cannot be read ({reason})"], source=source) from None


def _document(source: str, text: str) -> tuple[object, list[str]]:
    """The YAML document and its duplicate keys (as problems naming the file)."""
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        # Only the position and the problem: the parser's snippet of the line could show a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError([f"{source}{where}: invalid YAML: {problem}"], source=source) from None
    finally:
        loader.dispose()
    return data, [f"{source}: {item}" for item in loader.duplicates]


def load_config(path: str | os.PathLike[str], identities: IdentityRules = WORDS) -> Config:
    """Read and validate the YAML config file at ``path``; ConfigError names the file.

    ``identities`` are passed to :func:`~workers.kernel.config.document.parse_config`.
    """
    source = os.fspath(path)
    data, duplicates = _document(source, _read(source))
    try:
        config = parse_config(data, identities)
    except ConfigError as exc:
        raise ConfigError([*duplicates, *exc.problems], source=source) from None
    if duplicates:
        raise ConfigError(duplicates, source=source)
    return config


def resolve_config_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """``--config PATH``, else ``$REGOPS_CONFIG``, else ``./regops.yaml``; blank counts as not given."""
    for candidate in (os.fspath(explicit) if explicit is not None else None, environ.get(CONFIG_ENV)):
        if candidate is not None and candidate.strip():
            return Path(candidate.strip()).expanduser()
    return Path(DEFAULT_CONFIG_PATH)
