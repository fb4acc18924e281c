"""Logging every regops process shares: plain text or one JSON object per line, secrets masked."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from workers.kernel.secrets import Secret, SecretMasker

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLogFormatter(logging.Formatter):
    """The JSON log line every regops process writes with ``--log-format json``: one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    level: int | str = "INFO",
    secrets: SecretMasker | Iterable[Secret | str | None] = (),
    fmt: str = "text",
) -> SecretMasker:
    """Log to standard error in ``fmt`` (``text`` or ``json``) at ``level``, masking ``secrets``.

    ``secrets`` is a masker (whose sources may still grow, as a worker's registry passwords
    do) or fixed values; the masker installed is returned.  Set up once per process, in
    its entry point; a second call replaces the first.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use {' or '.join(LOG_FORMATS)}")
    masker = secrets if isinstance(secrets, SecretMasker) else SecretMasker()
    if not isinstance(secrets, SecretMasker):
        masker.add_secrets(secrets)
    masker.install()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Warnings (urllib3's among them) become log records, so they are masked too.
    logging.captureWarnings(True)
    return masker
