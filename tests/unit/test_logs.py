"""Log lines of both sides (workers.kernel.logs): JSON for shippers, and known secrets masked whatever the format.

The bot hands ``configure_logging`` its fixed tokens; a worker hands it a masker whose
sources (registry passwords, read at job time) it can still add to.  Either way every
record goes through the one masker: raw, JSON-escaped, URL-encoded and base64 forms.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.parse
import warnings

import pytest

from workers.kernel.logs import configure_logging
from workers.kernel.secrets import MASK, Secret, SecretMasker

SECRET = 'xoxb-very/secret"tökén'



def _stderr(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    # In the test itself: pytest puts its own capture back on sys.stderr after fixtures ran.
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    return out


def _forms(secret: str) -> dict[str, str]:
    header = json.dumps({"username": "u", "password": secret, "serveraddress": "r.example:5000"})
    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "url": urllib.parse.quote(secret, safe=""),
        "base64": base64.urlsafe_b64encode(header.encode()).decode(),
    }


def _configure(side: str, fmt: str) -> None:
    if side == "bot":  # as bot/cli.py does: the tokens it holds, fixed for the process
        configure_logging("DEBUG", [Secret(SECRET), None, Secret("")], fmt=fmt)
    else:  # as workers/__main__.py does: a masker whose sources are asked again as they change
        masker = SecretMasker()
        configure_logging(logging.DEBUG, masker, fmt)
        masker.add_source(lambda: [SECRET])


@pytest.mark.parametrize("side", ["bot", "worker"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_masked_in_every_form_and_format(
    side: str, fmt: str, restored_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _stderr(monkeypatch)
    _configure(side, fmt)
    logger = logging.getLogger("regops.test")
    for name, form in _forms(SECRET).items():
        logger.info("%s form: %s", name, form)
    try:
        raise ValueError(f"boom {SECRET}")
    except ValueError:
        logger.exception("failed")
    warnings.warn(f"insecure request to {SECRET}", stacklevel=1)
    out = stream.getvalue()
    for name, form in _forms(SECRET).items():
        assert form not in out, name
    assert SECRET not in out and "tökén" not in out
    assert out.count(MASK) >= 6
    if fmt == "json":
        lines = [json.loads(line) for line in out.strip().splitlines()]
        first = lines[0]
        assert first["level"] == "INFO" and first["logger"] == "regops.test"
        assert first["message"] == f"raw form: {MASK}"
        failed = next(line for line in lines if line["message"] == "failed")
        assert "ValueError" in failed["exception"] and MASK in failed["exception"] and "time" in failed
    else:
        assert f"INFO regops.test: raw form: {MASK}" in out


def test_setting_logging_up_twice_leaves_one_handler(restored_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _stderr(monkeypatch)
    configure_logging("INFO", [Secret("first-token")])
    masker = configure_logging("INFO", [Secret("second-token")], fmt="json")
    logging.getLogger("regops.test").info("first-token second-token")
    (line,) = stream.getvalue().strip().splitlines()
    assert json.loads(line)["message"] == f"first-token {MASK}"
    assert masker.mask("second-token") == MASK


def test_an_unknown_format_is_refused(restored_logging: None) -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging("INFO", (), fmt="xml")
