"""Process settings read once from the environment, with every secret wrapped in :class:`Secret`."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from workers.kernel.config import MetricsToken
from workers.kernel.secrets import Secret

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def mask_url(url: str) -> str:
    """The URL with any user:password part replaced, for logs and summaries."""
    return re.sub(r"//[^/@]*@", "//***@", url)


@dataclass(frozen=True)
class Settings:
    """What the bot reads from its environment. Secrets never show in repr."""

    slack_bot_token: Secret | None
    slack_signing_secret: Secret | None
    slack_api_url: str
    redis_url: Secret
    slack_app_token: Secret | None = None
    """An ``xapp-`` app-level token: when set, `regops serve` talks to Slack over Socket Mode."""
    metrics_token: Secret | None = None
    """The bearer token ``GET /metrics`` wants (read from where the config says: :func:`read_metrics_token`)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        def secret(name: str) -> Secret | None:
            value = environ.get(name, "").strip()
            return Secret(value) if value else None

        api_url = environ.get("SLACK_API_URL", "").strip() or DEFAULT_SLACK_API_URL
        if not api_url.endswith("/"):
            api_url += "/"
        return cls(
            slack_bot_token=secret("SLACK_BOT_TOKEN"),
            slack_signing_secret=secret("SLACK_SIGNING_SECRET"),
            slack_api_url=api_url,
            redis_url=Secret(environ.get("REDIS_URL", "").strip() or DEFAULT_REDIS_URL),
            slack_app_token=secret("SLACK_APP_TOKEN"),
        )

    @property
    def redis_password(self) -> Secret | None:
        """The password inside REDIS_URL, if any, so logs can mask it on its own too."""
        password = urllib.parse.urlsplit(self.redis_url.reveal()).password
        return Secret(urllib.parse.unquote(password)) if password else None

    @property
    def redis_url_masked(self) -> str:
        return mask_url(self.redis_url.reveal())

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def missing_for_slack(self) -> list[str]:
        """Names of the variables `regops serve` cannot run without.

        Socket Mode needs no signing secret: envelopes arrive over a WebSocket the bot opened itself
        with the app token, and Slack does not sign them. Without one, HTTP requests are all refused.
        """
        missing = []
        if self.slack_bot_token is None:
            missing.append("SLACK_BOT_TOKEN")
        if self.slack_signing_secret is None and not self.socket_mode:
            missing.append("SLACK_SIGNING_SECRET")
        return missing

    def slack_problems(self) -> list[str]:
        """What is wrong with the Slack settings `regops serve` would use, as sentences."""
        problems = []
        missing = self.missing_for_slack()
        if missing:
            problems.append(f"set {' and '.join(missing)} (see README: Configuration)")
        if self.slack_app_token is not None and not self.slack_app_token.reveal().startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN must be an app-level token (xapp-…) with connections:write; "
                            "unset it for HTTP mode")
        return problems


def read_metrics_token(source: MetricsToken | None, environ: Mapping[str, str]) -> Secret | None:
    """The bearer token ``GET /metrics`` wants, from the config's variable or file; None when none is configured.

    Raises ValueError (a sentence naming where, never a value) when it is configured but empty or
    unreadable: a protection the operator asked for must not silently fall away.
    """
    if source is None:
        return None
    if source.env:
        value = environ.get(source.env, "").strip()
    else:
        try:
            value = Path(str(source.file)).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ValueError(f"the metrics token cannot be read from {source.source} ({reason})") from None
    if not value:
        raise ValueError(f"the metrics token is empty: set {source.source} (see metrics_token_env in the config)")
    return Secret(value)
