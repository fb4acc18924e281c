"""Slack Web API clients: the bot-token WebClient (with retries) and response_url posts."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from workers.kernel.secrets import Secret

TRANSIENT_ERRORS = frozenset({"ratelimited", "service_unavailable", "internal_error", "fatal_error",
                              "request_timeout"})
"""Slack Web API error codes that may heal by waiting: the same call is worth trying again later."""

_webhook_log = logging.getLogger(f"{__name__}.response_url")
# slack_sdk's WebhookClient logs the whole URL and body at DEBUG; a response_url is a capability
# (anyone holding it may post to the channel for 30 minutes), so its debug lines stay off.
_webhook_log.setLevel(logging.INFO)


class ResponseUrlError(Exception):
    """Slack refused a response_url post (after the client's retries) with this HTTP status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"response_url answered HTTP {status}")
        self.status = status


def build_web_client(token: Secret | None, base_url: str, timeout: int = 10, *,
                     wait_on_rate_limits: bool = True) -> WebClient:
    """A WebClient that waits out 429s (Retry-After) and retries 5xx and connection errors.

    Without a token, for Bolt: it copies this client's settings (retries included) into the
    client of each request and gives that one the token its authorize step returned.
    ``wait_on_rate_limits=False``: a 429 raises at once (for a caller that schedules its own retries).
    """
    return WebClient(
        token=token.reveal() if token is not None else None,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            *([RateLimitErrorRetryHandler(max_retry_count=3)] if wait_on_rate_limits else []),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def post_response_url(url: str, body: dict[str, Any], timeout: float = 10.0) -> None:
    """POST a message to a command's response_url; raises on HTTP or connection errors.

    Connection errors and 500/503 are retried twice, a 429 once after its Retry-After; what
    still fails raises (:class:`ResponseUrlError` for an HTTP status) and the relay retries later.
    """
    if not url.startswith(("https://", "http://")):
        raise ValueError("response_url must be an http(s) URL")
    client = WebhookClient(
        url,
        timeout=int(max(1, timeout)),
        logger=_webhook_log,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=1),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )
    response = client.send_dict(body)
    if not 200 <= response.status_code < 300:
        raise ResponseUrlError(response.status_code)
