"""Slack user-group memberships for the policy: loaded at start-up, refreshed in the background.

No Slack call stands between a command and its ack: the policy reads memberships from
this in-process cache. A group whose membership cannot be known (Slack error, a plan
without user groups) reads as unknown, and the policy then fails closed for its grants.
A failed refresh keeps the last good membership only while it is younger than
``max_age``, so one Slack hiccup does not lock a team out, and a long outage does not
keep stale rights alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300.0
RETRY_SECONDS = 30.0
MAX_AGE_SECONDS = 900.0


@dataclass(frozen=True)
class _Known:
    members: frozenset[str]
    fetched_at: float


class UserGroupDirectory:
    """Implements ``bot.core.access.Membership`` from ``usergroups.users.list``."""

    def __init__(
        self,
        client: WebClient,
        groups: Iterable[str],
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._groups = tuple(sorted(set(groups)))
        self._refresh_seconds = refresh_seconds
        self._retry_seconds = retry_seconds
        self._max_age = max_age
        self._clock = clock
        self._known: dict[str, _Known] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self.ready = threading.Event()
        """Set once the first load has been attempted for every group (whatever its result)."""

    @property
    def groups(self) -> tuple[str, ...]:
        return self._groups

    def members(self, group: str) -> frozenset[str] | None:
        with self._lock:
            known = self._known.get(group)
        if known is None or self._clock() - known.fetched_at > self._max_age:
            return None
        return known.members

    def error(self, group: str) -> str | None:
        """Why the group's membership is unknown, for logs (the Slack error code)."""
        with self._lock:
            return self._errors.get(group)

    def refresh(self) -> bool:
        """Fetch every group once; True when all succeeded."""
        ok = True
        for group in self._groups:
            try:
                answer = self._client.usergroups_users_list(usergroup=group)
                users: list[str] = list(answer.get("users") or [])
                members = frozenset(str(user) for user in users)
            except SlackApiError as exc:
                error = str(exc.response.get("error", "unknown_error"))
                self._failed(group, error)
                ok = False
                continue
            except OSError as exc:
                self._failed(group, type(exc).__name__)
                ok = False
                continue
            with self._lock:
                self._known[group] = _Known(members, self._clock())
                self._errors.pop(group, None)
            log.info("user group %s: %d members", group, len(members))
        self.ready.set()
        return ok

    def _failed(self, group: str, error: str) -> None:
        with self._lock:
            self._errors[group] = error
        log.error("user group %s: membership unknown (%s); its grants do not apply until it loads", group, error)

    def run(self, stop: threading.Event) -> None:
        """Load now, then refresh every few minutes (sooner after a failure) until ``stop``."""
        while not stop.is_set():
            ok = self.refresh() if self._groups else True
            self.ready.set()
            if not self._groups:
                return
            stop.wait(self._refresh_seconds if ok else self._retry_seconds)
