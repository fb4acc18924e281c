"""Checks of the globs in access rules: each must be able to match what it is matched against."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from workers.kernel.actions import ACTIONS
from workers.kernel.config.problems import Problems, did_you_mean, join_names

GLOB_KEYS = (
    ("images", "image name globs, like [centos7-*]"),
    ("tags", 'tag globs, like ["*"]'),
    ("registries", 'registry name globs, like ["*"]'),
    ("hosts", "Docker host name globs, like [build-*]"),
)
"""The glob lists of a role, with what each holds; approvals rules take the first two."""


def check_action_patterns(
    problems: Problems, patterns: Sequence[str], path: str, actions: Sequence[str] = ACTIONS
) -> None:
    for index, pattern in enumerate(patterns):
        if not any(fnmatch.fnmatchcase(action, pattern) for action in actions):
            problems.add(
                f"{path}[{index}]",
                f"`{pattern}` matches no action; {did_you_mean(pattern, actions)}actions are "
                f"{join_names(actions)}, or a glob like `*`",
            )


def unclosed_bracket(pattern: str) -> bool:
    """True when a ``[`` opens a character class that never closes (fnmatch would match it literally)."""
    position = pattern.find("[")
    while position != -1:
        # fnmatch lets `]` right after `[` or `[!` be a literal member of the class.
        body = position + 1
        if pattern[body : body + 1] == "!":
            body += 1
        if pattern[body : body + 1] == "]":
            body += 1
        close = pattern.find("]", body)
        if close == -1:
            return True
        position = pattern.find("[", close + 1)
    return False


def check_globs(problems: Problems, patterns: Sequence[str], path: str, kind: str) -> None:
    """Globs that can never match what they are matched against are mistakes, reported here."""
    for index, pattern in enumerate(patterns):
        where = f"{path}[{index}]"
        if unclosed_bracket(pattern):
            problems.add(where, f"`{pattern}`: a `[` is never closed; close it with `]`, or drop it")
        elif kind == "images" and pattern != pattern.lower():
            problems.add(
                where, f"`{pattern}` can never match: image names are lower-case; use `{pattern.lower()}`"
            )
        elif kind == "images" and (":" in pattern or "@" in pattern):
            problems.add(
                where,
                f"`{pattern}` can never match: give the image name only, and the tag under `tags`",
            )
        elif kind == "tags" and ("/" in pattern or ":" in pattern):
            problems.add(where, f"`{pattern}` can never match: a tag has no `/` or `:`")


def check_named_globs(
    problems: Problems, patterns: Sequence[str], path: str, names: Sequence[str] | None, noun: str
) -> None:
    """Registry and host globs must each match a configured name (unknown names: nothing to check)."""
    if names is None:
        return
    for index, pattern in enumerate(patterns):
        if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
            problems.add(
                f"{path}[{index}]",
                f"`{pattern}` matches no configured {noun}; {did_you_mean(pattern, names)}"
                f"defined: {join_names(names)}",
            )


def read_globs(
    problems: Problems, data: Mapping[str, Any], path: str, keys: Sequence[tuple[str, str]]
) -> dict[str, tuple[str, ...]]:
    """The glob lists among ``keys`` that ``data`` gives, each checked."""
    globs: dict[str, tuple[str, ...]] = {}
    for key, what in keys:
        if key in data:
            patterns = problems.strings(data[key], f"{path}.{key}", what)
            if patterns is not None:
                check_globs(problems, patterns, f"{path}.{key}", key)
                globs[key] = patterns
    return globs
