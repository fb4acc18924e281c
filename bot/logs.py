"""Process-wide logging set-up, with a filter that masks every known secret value."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from workers.kernel.logs import JsonLogFormatter
from workers.kernel.secrets import Secret

MASK = "********"


class SecretFilter(logging.Filter):
    """Replaces secret values in a record's final message: a last line of defence, not the first."""

    def __init__(self, secrets: Iterable[Secret | None]) -> None:
        super().__init__()
        self._values = sorted({s.reveal() for s in secrets if s and len(s.reveal()) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._values:
            return True
        message = record.getMessage()
        masked = message
        for value in self._values:
            masked = masked.replace(value, MASK)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text
        if exc_text:
            for value in self._values:
                exc_text = exc_text.replace(value, MASK)
            record.exc_text = exc_text
        if masked != message:
            record.msg, record.args = masked, None
        return True


LOG_FORMATS = ("text", "json")


def configure_logging(level: str = "INFO", secrets: Iterable[Secret | None] = (), fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
