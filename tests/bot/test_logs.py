"""Log lines: JSON for shippers, and known secrets masked whatever the format."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import configure_logging
from workers.kernel.secrets import Secret


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_masked_in_every_format(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("DEBUG", [Secret("xoxb-very-secret-token")], fmt=fmt)
    try:
        logging.getLogger("regops.test").info("calling with %s", "xoxb-very-secret-token")
        try:
            raise ValueError("boom xoxb-very-secret-token")
        except ValueError:
            logging.getLogger("regops.test").exception("failed")
    finally:
        logging.getLogger().handlers.clear()
    out = stream.getvalue()
    assert "xoxb-very-secret-token" not in out
    assert "********" in out
    if fmt == "json":
        first, second = (json.loads(line) for line in out.strip().splitlines()[:2])
        assert first["level"] == "INFO" and first["logger"] == "regops.test"
        assert first["message"] == "calling with ********"
        assert "ValueError" in second["exception"] and "time" in second
