"""The console front end: the same parse → authorize → enqueue path as Slack, printed to a terminal.

Lines like ``/registry push centos7-elasticsearch latest`` (the ``/registry`` is
optional) are handled by :class:`bot.core.service.Service` as the configured user; the
acknowledgement and then every event of the jobs this shell queued are printed as
they arrive.  Standard input may be a terminal or a script; at its end the shell
waits for its jobs to finish.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import TextIO

import redis

from bot.core.outcomes import outcome_text
from bot.core.service import Request, Service
from workers.kernel.jobs import TERMINAL_EVENTS, JobRecord
from workers.kernel.keys import EVENTS_STREAM, job_key

PROMPT = "regops> "
_EMOJI = re.compile(r":[a-z][a-z0-9_+-]*:\s*")  # emoji codes start with a letter; times do not


def plain(text: str) -> str:
    """Slack mrkdwn made readable in a terminal: no emoji codes, no user-mention brackets."""
    text = _EMOJI.sub("", text)
    return re.sub(r"<@([A-Za-z0-9_.-]+)>", r"@\1", text)


class Shell:
    def __init__(
        self,
        service: Service,
        connection: redis.Redis,
        *,
        user: str,
        channel: str | None,
        out: TextIO,
        job_wait: Callable[[str], float] = lambda _action: 3600.0,
        prompt: str | None = None,
    ) -> None:
        self._service = service
        self._redis = connection
        self._user = user
        self._channel = channel
        self._out = out
        self._job_wait = job_wait
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # job id -> deadline
        self._failed = 0
        self._done = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._last_id = "0-0"
        self._prompt = prompt

    def print(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def _show_prompt(self) -> None:
        if self._prompt:
            self._out.write(self._prompt)
            self._out.flush()

    def run(self, lines: Iterable[str]) -> int:
        """Handle every line; then wait for this shell's jobs. Exit status 1 if any job failed."""
        newest = self._redis.xrevrange(EVENTS_STREAM, count=1)
        self._last_id = newest[0][0] if newest else "0-0"
        follower = threading.Thread(target=self._follow, name="regops-shell-events", daemon=True)
        follower.start()
        try:
            with self._lock:
                self._show_prompt()
            for line in lines:
                stripped = line.strip()
                if stripped in ("exit", "quit"):
                    break
                if stripped and not stripped.startswith("#"):
                    self.handle(stripped)
                with self._lock:
                    self._show_prompt()
            self._wait_for_jobs()
        finally:
            self._stop.set()
            follower.join(timeout=5)
        return 1 if self._failed else 0

    def handle(self, line: str) -> None:
        reply = self._service.handle(Request(user_id=self._user, text=line, channel_id=self._channel,
                                             frontend="console"))
        if reply.job is not None:
            with self._lock:
                self._pending[reply.job.job_id] = time.monotonic() + self._job_wait(reply.job.action)
        self.print(plain(reply.text))

    def _wait_for_jobs(self) -> None:
        with self._done:
            while self._pending:
                now = time.monotonic()
                overdue = [job for job, deadline in self._pending.items() if deadline <= now]
                for job in overdue:
                    self._out.write(f"[job {job}] gave up waiting: no outcome in time\n")
                    self._failed += 1
                    del self._pending[job]
                if self._pending:
                    self._done.wait(timeout=1.0)

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                entries = self._redis.xread({EVENTS_STREAM: self._last_id}, count=100, block=500)
            except redis.RedisError as exc:
                self.print(f"(lost contact with Redis: {type(exc).__name__}; retrying)")
                self._stop.wait(1.0)
                continue
            for _stream, messages in entries or []:
                for event_id, fields in messages:
                    self._last_id = event_id
                    self._show(fields)

    def _show(self, fields: dict[str, str]) -> None:
        job_id = fields.get("job_id", "")
        with self._lock:
            if job_id not in self._pending:
                return
        record_fields = self._redis.hgetall(job_key(job_id))
        if not record_fields:
            return
        record = JobRecord.from_fields(record_fields)
        event_type = fields.get("type", "")
        if event_type in TERMINAL_EVENTS:
            # The record may have moved on already; the terminal event is what we report.
            line = outcome_text(record)
        elif event_type == "progress":
            line = f"running: {record.action} — {fields.get('progress', '?')}%"
        else:
            line = event_type if event_type != "started" else f"started on host {record.host}"
        with self._done:
            # At a terminal the line replaces the waiting prompt, which is then shown again.
            lead = "\r" if self._prompt else ""
            self._out.write(f"{lead}[job {job_id}] {plain(line)}\n")
            self._show_prompt()
            if event_type in TERMINAL_EVENTS:
                if event_type == "failed":
                    self._failed += 1
                self._pending.pop(job_id, None)
                self._done.notify_all()
