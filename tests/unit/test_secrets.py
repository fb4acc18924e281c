"""The one secret masker (workers.kernel.secrets): every form a secret can take in a log line, every record.

Both sides install it through ``configure_logging`` (tests/unit/test_logs.py); here it is on its own.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.leaks import leaked_forms
from workers.credentials import CredentialStore
from workers.kernel.config import load_config
from workers.kernel.secrets import MASK, Secret, SecretMasker, secret_forms, url_secrets


def test_secret_forms_cover_docker_registry_auth_headers() -> None:
    for password in ["s3cret-Pa55", 'quo"te\\back/slash', "ünïcödé-pass", secrets.token_urlsafe(24)]:
        forms = secret_forms(password)
        for username in ["u", "us", "use", "user001@namespace.example.com"]:
            payload = json.dumps({"username": username, "password": password, "serveraddress": "127.0.0.1:5000"})
            for header in (base64.urlsafe_b64encode(payload.encode()), base64.b64encode(payload.encode())):
                assert any(form in header.decode() for form in forms), (password, username)
        assert password in forms and urllib.parse.quote(password, safe="") in forms


def test_very_short_values_are_not_masked() -> None:
    assert secret_forms("abc") == set()


@pytest.fixture
def masked_logger() -> Iterator[tuple[logging.Logger, io.StringIO, SecretMasker]]:
    factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(f"hardening.test.{secrets.token_hex(4)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    mask = SecretMasker()
    mask.install()
    try:
        yield logger, stream, mask
    finally:
        logging.setLogRecordFactory(factory)
        logger.removeHandler(handler)


def test_the_mask_covers_arguments_exceptions_and_every_level(masked_logger: tuple[logging.Logger, io.StringIO,
                                                                                    SecretMasker]) -> None:
    logger, stream, mask = masked_logger
    password = "Registry-Pa55-" + secrets.token_hex(6)
    mask.add_source(lambda: [password])
    header = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": password}).encode()).decode()
    logger.debug("header X-Registry-Auth: %s", header)
    logger.info("login with %r", {"password": password})
    try:
        raise RuntimeError(f"engine said: bad password {password}")
    except RuntimeError:
        logger.exception("login failed")
    logger.warning("url %s", f"redis://:{urllib.parse.quote(password, safe='')}@127.0.0.1:6379/0")
    text = stream.getvalue()
    assert leaked_forms(text, password) == []
    # header, argument, exception message, URL: four masks, and the traceback is still there.
    assert text.count(MASK) == 4 and "RuntimeError" in text and "Traceback" in text


def test_the_mask_follows_a_rotated_password(masked_logger: tuple[logging.Logger, io.StringIO, SecretMasker],
                                             tmp_path: Path) -> None:
    logger, stream, _ = masked_logger
    clock = [0.0]
    mask = SecretMasker(clock=lambda: clock[0])
    mask.install()
    secret_file = tmp_path / "password"
    secret_file.write_text("first-Pa55word\n")
    config = tmp_path / "regops.yaml"
    config.write_text("registries:\n  main:\n    server: r.example:5000\n    namespace: ns\n    username: u\n"
                      f"    password_file: {secret_file}\nhosts: [build-1]\n")
    credentials = CredentialStore(load_config(config).registries, {})
    mask.add_source(credentials.passwords)
    logger.info("one first-Pa55word")
    secret_file.write_text("second-Pa55word\n")
    clock[0] += 3600
    logger.info("two second-Pa55word")
    assert "Pa55word" not in stream.getvalue()


def test_a_failing_or_logging_source_never_breaks_logging(masked_logger: tuple[logging.Logger, io.StringIO,
                                                                                 SecretMasker]) -> None:
    logger, stream, mask = masked_logger
    clock = [0.0]
    calls = [0]
    mask = SecretMasker(clock=lambda: clock[0])
    mask.install()

    def flaky() -> list[str]:
        calls[0] += 1
        logger.debug("asked for secrets (%d)", calls[0])  # must not recurse into the mask
        if calls[0] > 1:
            raise OSError("secret store unavailable")
        return ["flaky-Pa55word"]

    mask.add_source(flaky)
    logger.info("one flaky-Pa55word")
    clock[0] += 3600
    logger.info("two flaky-Pa55word")  # the source fails now: what it gave before stays masked
    assert calls[0] == 2
    assert "flaky-Pa55word" not in stream.getvalue() and stream.getvalue().count(MASK) == 2


def test_a_record_that_cannot_be_checked_is_withheld(masked_logger: tuple[logging.Logger, io.StringIO,
                                                                          SecretMasker]) -> None:
    logger, stream, mask = masked_logger
    mask.add_source(lambda: ["unseen-Pa55word"])

    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no")

    logger.warning(Unprintable())
    logger.info("still logging after it")
    assert "withheld" in stream.getvalue() and "still logging after it" in stream.getvalue()


def test_url_secrets_are_the_password_raw_and_decoded() -> None:
    assert url_secrets("rediss://user:p%40ss%2Fword@h:6380/0?ssl_ca_certs=/x") == ["p%40ss%2Fword", "p@ss/word"]
    assert url_secrets("redis://127.0.0.1:6379/0") == []


def test_fixed_secrets_skip_empty_ones_and_unwrap_secrets() -> None:
    masker = SecretMasker()
    masker.add_secrets([Secret("xoxb-fixed-token"), None, Secret(""), "plain-value-1"])
    assert masker.mask("a xoxb-fixed-token b plain-value-1") == f"a {MASK} b {MASK}"


def test_the_four_forms_are_masked() -> None:
    secret = 'pa"ss/wörd+1'
    masker = SecretMasker()
    masker.add_secrets([Secret(secret)])
    escaped = json.dumps(secret)[1:-1]
    header = base64.b64encode(json.dumps({"username": "u", "password": secret}).encode()).decode()
    for text in (secret, escaped, json.dumps(secret, ensure_ascii=False)[1:-1], urllib.parse.quote(secret, safe=""),
                 urllib.parse.quote_plus(secret), header):
        assert MASK in masker.mask(f"[{text}]"), text
    assert leaked_forms(masker.mask(f"{secret} {escaped} {urllib.parse.quote(secret)} {header}"), secret) == []


def test_installing_again_replaces_the_masker_rather_than_stacking_it() -> None:
    factory = logging.getLogRecordFactory()
    try:
        first, second = SecretMasker(), SecretMasker()
        first.add_secrets(["first-secret"])
        second.add_secrets(["second-secret"])
        first.install()
        second.install()
        record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "%s %s",
                                                ("first-secret", "second-secret"), None)
        assert record.getMessage() == f"first-secret {MASK}"
    finally:
        logging.setLogRecordFactory(factory)
