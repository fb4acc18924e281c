"""The shared error hierarchy: every expected failure carries a message safe to show users."""

from __future__ import annotations

from collections.abc import Sequence


class RegopsError(Exception):
    """Base error of regops; ``user_message`` is safe to show a person verbatim."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class UsageError(RegopsError):
    """Bad command input: the message says what was wrong and what would be right."""


class ConfigError(RegopsError):
    """The configuration is unusable; ``problems`` lists every problem found.

    Each problem reads ``key.path: what is wrong; what would be valid``.
    ``source`` (keyword-only, optional) names the file the problems were found in.
    """

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        self.source = source
        count = len(self.problems)
        where = f" ({source})" if source else ""
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid configuration{where}: {count} {noun}")

    def summary(self) -> str:
        """The message and every problem on one line, for a log or a one-line check result."""
        return f"{self.user_message}: " + "; ".join(self.problems) if self.problems else self.user_message
