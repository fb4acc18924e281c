"""Slack Web API clients: the bot-token WebClient (with retries) and response_url posts."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from workers.kernel.secrets import Secret


def build_web_client(token: Secret, base_url: str, timeout: int = 10) -> WebClient:
    """A WebClient that waits out 429s (Retry-After) and retries 5xx and connection errors."""
    return WebClient(
        token=token.reveal(),
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def post_response_url(url: str, body: dict[str, Any], timeout: float = 10.0) -> None:
    """POST a message to a command's response_url; raises on HTTP or connection errors."""
    if not url.startswith(("https://", "http://")):
        raise ValueError("response_url must be an http(s) URL")
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
