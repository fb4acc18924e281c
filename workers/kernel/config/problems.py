"""The problem collector: typed readers that note what is wrong at a key path and walk on.

Every problem reads ``key.path: what is wrong; what would be valid``.  A reader never
echoes a value it was not sure is harmless: strings are quoted back only where the
setting cannot hold a secret (names, globs, IDs, durations).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workers.kernel.actions import NAME_PATTERN
from workers.kernel.errors import UsageError
from workers.kernel.times import parse_duration

DURATION_HINT = "give seconds (90) or a duration like 90s, 30m, 1h, 1h30m"


def kind(value: object) -> str:
    """What ``value`` is, in words, for "got …" (never the value itself)."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return type(value).__name__


def join_names(names: Sequence[str]) -> str:
    """```a`, `b``, or ``none``."""
    return ", ".join(f"`{name}`" for name in names) if names else "none"


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def did_you_mean(value: str, names: Sequence[str]) -> str:
    """``did you mean `x`? `` for the closest of ``names``, or nothing."""
    close = difflib.get_close_matches(value, list(names), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`? " if close else ""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a registry, host or role; None if it can."""
    if NAME_PATTERN.fullmatch(name):
        return None
    return (
        f"name `{name}` is not valid: use letters, digits, `_`, `.` and `-`, starting with a letter or digit"
    )


class Problems:
    """Collects problems while the whole document is walked, so all are reported together."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path or '(top level)'}: {message}")

    def mapping(
        self,
        value: object,
        path: str,
        required: Sequence[str],
        optional: Sequence[str],
        hints: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any] | None:
        """``value`` as a mapping with only the allowed keys; None (and a problem) if not a mapping."""
        allowed = [*required, *optional]
        if not isinstance(value, Mapping):
            self.add(path, f"must be a mapping with keys {join_names(allowed)}; got {kind(value)}")
            return None
        for key in value:
            if not isinstance(key, str):
                self.add(path, f"key {key!r} must be a string; valid keys: {join_names(allowed)}")
            elif key not in allowed:
                hint = (hints or {}).get(key)
                if hint is None:
                    hint = f"{did_you_mean(key, allowed)}valid keys: {join_names(allowed)}"
                self.add(join_path(path, key), f"unknown key; {hint}")
        for key in required:
            if key not in value:
                self.add(join_path(path, key), "is required")
        return value

    def string(self, value: object, path: str, what: str) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, str):
            self.add(path, f"must not be empty; give {what}")
        else:
            quote = "; quote it" if isinstance(value, (int, float, bool)) else ""
            self.add(path, f"must be a string ({what}); got {kind(value)}{quote}")
        return None

    def checked(self, value: object, path: str, what: str, check: Callable[[str], str]) -> str | None:
        """A string that ``check`` accepts (returning it normalised) or rejects with a UsageError."""
        text = self.string(value, path, what)
        if text is None:
            return None
        try:
            return check(text)
        except UsageError as exc:
            self.add(path, exc.user_message)
            return None

    def strings(self, value: object, path: str, what: str) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.add(path, f"must be a list of {what}, like [a, b]; got {kind(value)}")
            return None
        if not value:
            self.add(path, f"must not be empty; give {what}")
            return None
        items = [self.string(item, f"{path}[{index}]", what) for index, item in enumerate(value)]
        return (
            None if any(item is None for item in items) else tuple(item for item in items if item is not None)
        )

    def each(self, values: Sequence[str], path: str, check: Callable[[str], str | None]) -> None:
        """Note ``check``'s problem, if any, for every item of a list read with :meth:`strings`."""
        for position, value in enumerate(values):
            problem = check(value)
            if problem is not None:
                self.add(f"{path}[{position}]", problem)

    def duration(self, value: object, path: str) -> int | None:
        """Positive whole seconds, from a number or a duration string (see :mod:`workers.kernel.times`)."""
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            self.add(path, f"must be a duration; got {kind(value)}; {DURATION_HINT}")
            return None
        if isinstance(value, int):
            seconds = value
        else:
            try:
                seconds = parse_duration(value)
            except ValueError:
                self.add(path, f"`{value}` is not a duration; {DURATION_HINT}")
                return None
        if seconds <= 0:
            self.add(path, f"must be positive; {DURATION_HINT}")
            return None
        return seconds

    def count(self, value: object, path: str, what: str, note: str = "") -> int | None:
        """A whole number, at least 1 (``what`` names the unit, like "approvals"; ``note`` says what 1 means)."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"must be a whole number of {what}, at least 1; got {kind(value)}")
            return None
        if value < 1:
            self.add(path, f"must be at least 1{note}; got {value}")
            return None
        return value
