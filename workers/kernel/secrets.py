"""Typed secrets: a wrapper that never shows its value, and the masker every process's logs go through."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

MASK = "********"
REFRESH_SECONDS = 30.0
"""How soon a rotated secret (a password read from its file at job time, say) is masked too."""
MIN_LENGTH = 4
"""Shorter values are not masked: masking a two-letter "password" would mask half the log."""


class Secret:
    """A string that never shows itself in a repr, str, log line or traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def secret_forms(secret: str) -> set[str]:
    """Every form in which ``secret`` could reach a log line.

    Besides the value itself: JSON-escaped (with and without ``\\uXXXX`` for non-ASCII),
    URL-encoded, and base64 (standard and URL-safe alphabets) — docker sends credentials
    as base64 JSON in X-Registry-Auth, so for each of the three byte alignments the run
    of base64 characters that depends on the secret alone is masked too.
    """
    if len(secret) < MIN_LENGTH:
        return set()
    escaped = {json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1]}
    forms = {secret, *escaped, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for text in {secret, *escaped}:
        data = text.encode()
        for offset in range(3):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(b"\0" * offset + data).decode()
                start, end = -(-8 * offset // 6), 8 * (offset + len(data)) // 6
                if end - start >= 6:
                    forms.add(encoded[start:end])
    return forms


def url_secrets(url: str) -> list[str]:
    """The password (and the URL-decoded one) carried by a URL such as REDIS_URL."""
    password = urllib.parse.urlsplit(url).password
    return [password, urllib.parse.unquote(password)] if password else []


def _reveal_all(secrets: Iterable[Secret | str | None]) -> list[str]:
    return [item.reveal() if isinstance(item, Secret) else item for item in secrets if item]


class SecretMasker:
    """Masks secrets, in every form of :func:`secret_forms`, in every log record as it is made.

    Installed as the log-record factory (:meth:`install`), it sees every record of every
    logger (ours, rq's, docker's, urllib3's, gunicorn's) before any handler does, at every
    level: a handler filter would see only the records that reach that handler, and
    libraries add handlers of their own.  It takes no lock (rq forks work horses while
    other threads may be logging), and it never raises into the code that logs: a record
    it cannot check is replaced by a notice.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._sources: list[Callable[[], Iterable[str]]] = []
        self._last_good: dict[int, set[str]] = {}
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._pattern: re.Pattern[str] | None = None
        self._expires = 0.0
        self._local = threading.local()

    def add_source(self, source: Callable[[], Iterable[str]]) -> None:
        """``source`` returns the current secret values; it is asked again every ``refresh_seconds``."""
        self._sources.append(source)
        self._expires = 0.0

    def add_secrets(self, secrets: Iterable[Secret | str | None]) -> None:
        """Values that do not change while the process runs (``None`` and empty ones are skipped)."""
        values = _reveal_all(secrets)
        self.add_source(lambda: values)

    def mask(self, text: str) -> str:
        pattern = self._current()
        return pattern.sub(MASK, text) if pattern is not None else text

    def _current(self) -> re.Pattern[str] | None:
        # Two threads refreshing at once compute the same thing; a source that logs while
        # being asked gets the previous pattern instead of recursing.
        if self._clock() < self._expires or getattr(self._local, "refreshing", False):
            return self._pattern
        self._local.refreshing = True
        try:
            forms: set[str] = set()
            for index, source in enumerate(list(self._sources)):
                try:
                    values = set().union(*(secret_forms(value) for value in source()))
                    self._last_good[index] = values
                except Exception:  # noqa: BLE001 - keep masking what this source gave last time
                    values = self._last_good.get(index, set())
                forms |= values
            # Longest first, so a secret is masked whole rather than around a shorter one inside it.
            ordered = sorted(forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            self._expires = self._clock() + self._refresh_seconds
            return self._pattern
        finally:
            self._local.refreshing = False

    def scrub(self, record: logging.LogRecord) -> None:
        """Mask ``record`` in place: its message (formatted now, once), exception and stack text."""
        try:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - logging would print the raw arguments in its error report
                message = f"{record.msg} (unformattable arguments {record.args!r})"
            # Formatted now, once: the arguments must not reach a handler unmasked.
            record.msg, record.args = self.mask(message), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.mask(record.exc_text)
            if record.stack_info:
                record.stack_info = self.mask(record.stack_info)
        except Exception:  # noqa: BLE001 - fail closed, and never break the code that logs
            record.msg, record.args = "(log record withheld: it could not be checked for secrets)", None
            record.exc_info = record.exc_text = record.stack_info = None

    def install(self) -> None:
        """Make every log record of this process (and of its forks) go through :meth:`scrub`.

        One masker per process: installing replaces a masker installed before, so setting
        logging up twice does not stack them.
        """
        previous = logging.getLogRecordFactory()
        base = getattr(previous, "masker_base", previous)

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record: logging.LogRecord = base(*args, **kwargs)
            self.scrub(record)
            return record

        factory.masker_base = base  # type: ignore[attr-defined]
        logging.setLogRecordFactory(factory)
