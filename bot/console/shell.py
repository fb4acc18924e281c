"""The console front end: the same parse → authorize → enqueue path as Slack, printed to a terminal.

Lines like ``push centos7-elasticsearch latest`` (a leading ``/registry`` is accepted too)
are handled by :class:`bot.core.service.Service` as the configured user; the acknowledgement
and then every event of the jobs this shell queued are printed as they arrive.  Standard
input may be a terminal or a script; at its end the shell waits for its jobs to finish.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TextIO

import redis

from bot.console.render import render
from bot.core.answers import query_answer
from bot.core.outcomes import outcome_text
from bot.core.replies import Request
from bot.core.service import Service
from bot.core.text import Text, code, t
from workers.kernel.actions import QUERY_ACTIONS, REGISTRY_QUEUE
from workers.kernel.history import read_history
from workers.kernel.jobs import ENDED_STATES, TERMINAL_EVENTS, EventType, JobRecord
from workers.kernel.keys import EVENTS_STREAM, answer_key, job_key

PROMPT = "regops> "

_EARLY_EVENTS = 256
"""Events kept for jobs not yet known to be this shell's (their ``queued`` may be read first)."""


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
        styled: bool = False,
    ) -> None:
        self._service = service
        self._redis = connection
        self._user = user
        self._channel = channel
        self._out = out
        self._job_wait = job_wait
        self._styled = styled
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # job id -> deadline
        self._early: OrderedDict[str, list[dict[str, str]]] = OrderedDict()
        self._failed = 0
        self._done = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._last_id = "0-0"
        self._prompt = prompt

    def print(self, text: Text) -> None:
        with self._lock:
            self._write_line(render(text, styled=self._styled))

    def _write_line(self, line: str) -> None:
        # At a terminal the line replaces the waiting prompt, which is then shown again.
        lead = "\r" if self._prompt else ""
        self._out.write(f"{lead}{line}\n")
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
        with self._lock:
            self._out.write(("\r" if self._prompt else "") + render(reply.text, styled=self._styled) + "\n")
            if reply.job is None:
                return
            job_id = reply.job.job_id
            self._pending[job_id] = time.monotonic() + self._job_wait(reply.job.action)
            early = self._early.pop(job_id, [])
        for fields in early:  # the follower read them before this shell knew the job was its own
            self._show(fields)

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
                self.print(t("(lost contact with Redis: {}; retrying)", type(exc).__name__))
                self._stop.wait(1.0)
                continue
            for _stream, messages in entries or []:
                for event_id, fields in messages:
                    self._last_id = event_id
                    if self._mine(fields):
                        self._show(fields)

    def _mine(self, fields: dict[str, str]) -> bool:
        """Whether the event is of one of this shell's jobs; others are kept a while in case they become so."""
        job_id = fields.get("job_id", "")
        with self._lock:
            if job_id in self._pending:
                return True
            self._early.setdefault(job_id, []).append(fields)
            self._early.move_to_end(job_id)
            while len(self._early) > _EARLY_EVENTS:
                self._early.popitem(last=False)
            return False

    def _show(self, fields: dict[str, str]) -> None:
        job_id = fields.get("job_id", "")
        record_fields = self._redis.hgetall(job_key(job_id))
        if not record_fields:
            return
        record = JobRecord.from_fields(record_fields)
        event_type = fields.get("type", "")
        if record.action in QUERY_ACTIONS:
            # A query has no progress to show: only its answer, once it has one.
            if event_type not in TERMINAL_EVENTS:
                return
            line = query_answer(record, self._redis.get(answer_key(job_id)),
                                lambda reference: read_history(self._redis, reference))
        elif event_type == EventType.STARTED.value:
            line = (t("started on the registry queue") if record.host == REGISTRY_QUEUE
                    else t("started on host {}", code(record.host)))
        elif event_type in TERMINAL_EVENTS or record.state not in ENDED_STATES:
            # Queued and progress lines show the record as it is now: its percentage and any note
            # (a retry's backoff, the job it waits for); once it has ended, the end event says so.
            line = outcome_text(record)
        else:
            return
        with self._done:
            if job_id not in self._pending:
                return
            self._write_line(f"[job {job_id}] {render(line, styled=self._styled)}")
            self._show_prompt()
            if event_type in TERMINAL_EVENTS:
                if event_type == EventType.FAILED.value:
                    self._failed += 1
                self._pending.pop(job_id, None)
                self._done.notify_all()
