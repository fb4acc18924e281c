"""Jobs after they are asked for: look them up, list them, see the hosts' workers, cancel them.

Reads come from the job records (the source of truth for outcomes), the recent-jobs
index written with every enqueue and approval request, and rq's own books (queues,
workers and their heartbeats, the started-job registries).  Cancellation is decided
in Redis with WATCH/MULTI on the job record (and the approval hash and the host's
queue), so a cancel racing the job's own end, a worker's dequeue or an approval
click leaves one outcome.  A running job is stopped through rq's stop-job command,
which makes the worker SIGKILL its work horse (closing the Docker stream); the job is
marked cancelled only after the horse is gone, so no late event of the task can
follow the cancellation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import redis
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import utcparse

from bot.core.access import Decision, Policy
from bot.core.approvals import ApprovalView, read_view
from bot.core.queueing import JobQueue
from bot.core.text import Text, code, command, plain, t
from workers.kernel.actions import REGISTRY_QUEUE
from workers.kernel.audit import AuditEntry
from workers.kernel.config import Config
from workers.kernel.jobs import ENDED_STATES, EventType, JobEvent, JobRecord, JobState
from workers.kernel.keys import (
    AUDIT_STREAM,
    EVENTS_STREAM,
    EVENTS_STREAM_MAXLEN,
    RECENT_JOBS_KEY,
    approval_key,
    job_key,
    rq_workers_key,
)
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

"""States a job never leaves; a job in one of them cannot be cancelled."""

CANCELLED_EVENT = JobState.CANCELLED
"""Event type written to the events stream when a job is cancelled (terminal, like succeeded/failed)."""

LIVE_HEARTBEAT_SECONDS = 480.0
"""A worker counts as live when its last heartbeat is this recent.

An idle rq worker heartbeats each time its blocking dequeue times out (``worker_ttl``
- 15 s, 405 s by default) and rq lets its key expire ``worker_ttl`` + 60 s after a
heartbeat: this is that window for rq's default ``worker_ttl``.
"""

STOP_WAIT_SECONDS = 2.0
"""How long a cancel waits for a running job's work horse to be killed (the ack must stay under 3 s)."""

_CANCEL_ATTEMPTS = 50


class CancelOutcome(StrEnum):
    CANCELLED = "cancelled"
    ENDED = "ended"            # the job had already ended; nothing changed
    REFUSED = "refused"        # this user may not cancel it
    UNKNOWN = "unknown"
    BUSY = "busy"              # contention or a stop that did not take: try again


@dataclass(frozen=True)
class CancelResult:
    outcome: CancelOutcome
    message: Text
    """User-safe sentence for the person who asked."""
    rule: str = ""
    record: JobRecord | None = None


@dataclass(frozen=True)
class HostView:
    name: str
    live_workers: tuple[str, ...]
    queued: int
    running: tuple[JobRecord, ...]


def _fields(raw: dict) -> dict[str, str]:
    return {as_str(k): as_str(v) for k, v in raw.items()}


def image_and_tag(record: JobRecord) -> tuple[str | None, str | None]:
    """The image name and tag a job is about (None for ``login``), to decide permissions on."""
    image, tag = record.extra.get("image"), record.extra.get("tag")
    if image:
        return image, tag or None  # `tags` and `inspect IMAGE@DIGEST` are about an image, not a tag
    if not record.reference:
        return None, None
    # Records written before image/tag were kept: REGISTRY/NAMESPACE/IMAGE:TAG.
    path, _, tag = record.reference.rpartition(":")
    server = record.extra.get("server", "")
    if server and path.startswith(server + "/"):
        path = path[len(server) + 1 :]
    else:
        path = path.partition("/")[2]
    return path.partition("/")[2] or path, tag


def is_live(last_heartbeat: str, now: float) -> bool:
    """Whether an rq worker hash's ``last_heartbeat`` (rq's UTC format) is recent enough."""
    if not last_heartbeat:
        return False
    try:
        beat = utcparse(last_heartbeat).timestamp()
    except ValueError:
        return False
    return now - beat <= LIVE_HEARTBEAT_SECONDS


class Jobs:
    """Queries and cancellation. ``connection`` returns bytes (rq's data is binary)."""

    def __init__(
        self,
        connection: redis.Redis,
        queue: JobQueue,
        policy: Policy,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        stop_job: Callable[[redis.Redis, str], None] | None = None,
        stop_wait: float = STOP_WAIT_SECONDS,
    ) -> None:
        self._redis = connection
        self._queue = queue
        self._policy = policy
        self._config = config
        self._clock = clock
        self._stop_job = stop_job or (lambda conn, job_id: send_stop_job_command(conn, job_id,
                                                                                 serializer=JSONSerializer))
        self._stop_wait = stop_wait

    # ---- reading -------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        raw = self._redis.hgetall(job_key(job_id))
        return JobRecord.from_fields(_fields(raw)) if raw else None

    def approval(self, job_id: str) -> ApprovalView | None:
        return read_view(self._redis, job_id)

    def decide(self, user: str, action: str, record: JobRecord, channel: str | None) -> Decision:
        """Whether ``user`` may run ``action`` (status, jobs, cancel) on this job: its requester always may."""
        if user == record.requester:
            return Decision(True, "requester", t("you may {} your own job", action))
        image, tag = image_and_tag(record)
        # A registry job ran on no Docker host: a role's `hosts` globs do not apply to it.
        host = None if record.host == REGISTRY_QUEUE else record.host
        return self._policy.decide(user, action, image, tag, channel=channel, registry=record.registry, host=host)

    def recent(self, user: str, channel: str | None, *, limit: int, mine: bool = False,
               image: str | None = None) -> list[JobRecord]:
        """Up to ``limit`` jobs, newest first, that ``user`` may see (only theirs with ``mine``)."""
        found: list[JobRecord] = []
        start, page = 0, max(limit * 4, 50)
        while len(found) < limit:
            ids = [as_str(i) for i in self._redis.zrevrange(RECENT_JOBS_KEY, start, start + page - 1)]
            if not ids:
                break
            start += page
            pipe = self._redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hgetall(job_key(job_id))
            for raw in pipe.execute():
                if not raw:
                    continue  # expired record; the index is trimmed on the next enqueue
                record = JobRecord.from_fields(_fields(raw))
                if image is not None and image_and_tag(record)[0] != image:
                    continue
                if mine or record.requester == user:
                    if record.requester != user:
                        continue
                elif not self.decide(user, "jobs", record, channel).allowed:
                    continue
                found.append(record)
                if len(found) == limit:
                    break
        return found

    def live_workers(self, hosts: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The names of each host's workers with a recent heartbeat."""
        names = list(hosts)
        pipe = self._redis.pipeline(transaction=False)
        for host in names:
            pipe.smembers(rq_workers_key(host))
        members = [sorted(as_str(m) for m in found) for found in pipe.execute()]
        pipe = self._redis.pipeline(transaction=False)
        for keys in members:
            for key in keys:
                pipe.hmget(key, ["last_heartbeat", "death"])
        beats = iter(pipe.execute())
        now = self._clock()
        live: dict[str, tuple[str, ...]] = {}
        for host, keys in zip(names, members, strict=False):
            alive = []
            for key in keys:
                heartbeat, death = next(beats)
                if not death and is_live(as_str(heartbeat), now):
                    alive.append(key.rpartition(":")[2])
            live[host] = tuple(alive)
        return live

    def hosts(self, names: Sequence[str] | None = None) -> list[HostView]:
        """Each host (all configured ones by default) with its live workers, queue length and running jobs."""
        names = list(self._config.hosts if names is None else names)
        live = self.live_workers(names)
        views = []
        for host in names:
            queue = self._queue.queue(host)
            started = StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
            running = [record for record in (self.get(job_id) for job_id in started) if record is not None]
            views.append(HostView(host, live[host], queue.count, tuple(running)))
        return views

    # ---- cancelling ----------------------------------------------------------------------

    def cancel(self, job_id: str, user: str, channel: str | None) -> CancelResult:
        record = self.get(job_id)
        if record is None:
            return CancelResult(CancelOutcome.UNKNOWN,
                                t("There is no job {} (or it is too old to change).", code(job_id)))
        decision = self.decide(user, "cancel", record, channel)
        if not decision.allowed:
            return CancelResult(CancelOutcome.REFUSED, decision.reason, decision.rule, record)
        deadline = time.monotonic() + self._stop_wait
        stop_sent = False
        for _attempt in range(_CANCEL_ATTEMPTS):
            result, running = self._cancel_unless_started(job_id, user, decision.rule)
            if result is not None:
                return result
            if running is None:
                continue
            # Dequeued or running: the work horse must die before the job is marked cancelled.
            if not stop_sent:
                stop_sent = self._send_stop(job_id)
            if stop_sent and self._horse_gone(job_id):
                result = self._mark_ended_job(job_id, user, decision.rule)
                if result is not None:
                    return result
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if stop_sent:
            # The stop command is out; the job's end is left to the worker (killed, or finished first).
            log.warning("cancel job=%s: the work horse was not seen to stop within %.1f s", job_id,
                        self._stop_wait)
            return CancelResult(CancelOutcome.BUSY, t("Job {} was told to stop but has not stopped yet; check {} in "
                                                      "a moment.", code(job_id), command(f"status {job_id}")),
                                decision.rule, record)
        return CancelResult(CancelOutcome.BUSY, t("Job {} is changing state right now; try again.", code(job_id)),
                            decision.rule, record)

    def _cancel_unless_started(self, job_id: str, user: str,
                               rule: str) -> tuple[CancelResult | None, JobRecord | None]:
        """Cancel a queued or awaiting job atomically; (None, record) when a worker already has it."""
        key = job_key(job_id)
        with self._redis.pipeline() as pipe:
            try:
                record = None
                pipe.watch(key, approval_key(job_id))
                raw = pipe.hgetall(key)
                if not raw:
                    return CancelResult(CancelOutcome.UNKNOWN, t("There is no job {}.", code(job_id))), None
                record = JobRecord.from_fields(_fields(raw))
                if record.state in ENDED_STATES:
                    return self._ended(record, rule), None
                now = self._clock()
                if record.state == JobState.AWAITING_APPROVAL:
                    view = read_view(pipe, job_id)
                    if view is None or not view.pending:
                        return None, None  # the approval hash is moving: read again
                    pipe.multi()
                    pipe.hset(approval_key(job_id), mapping={"state": JobState.CANCELLED, "decided_at": str(now),
                                                             "cancelled_by": user})
                    self._write_cancelled(pipe, record, user, now)
                    pipe.execute()
                    return self._cancelled(record, user, rule, "the approval request is closed"), None
                if record.state == EventType.QUEUED.value:
                    queue = self._queue.queue(record.host)
                    pipe.watch(queue.key)  # a worker's dequeue moves the id off this list
                    if pipe.lpos(queue.key, job_id) is not None:
                        try:
                            rq_job: Job | None = Job.fetch(job_id, connection=self._redis,
                                                           serializer=JSONSerializer)
                        except NoSuchJobError:
                            rq_job = None  # rq's hash is gone; a worker would skip the id
                        pipe.multi()
                        if rq_job is not None:
                            # Off the queue, status canceled, into rq's CanceledJobRegistry: in our MULTI.
                            rq_job.cancel(pipeline=pipe)
                        else:
                            queue.remove(job_id, pipeline=pipe)
                        self._write_cancelled(pipe, record, user, now)
                        pipe.execute()
                        return self._cancelled(record, user, rule, "it was taken off the queue"), None
                return None, record
            except redis.WatchError:
                return None, None

    def _send_stop(self, job_id: str) -> bool:
        try:
            self._stop_job(self._redis, job_id)
        except (InvalidJobOperation, NoSuchJobError):
            return False  # dequeued but not yet started by the horse: try again shortly
        log.info("cancel job=%s: stop command sent", job_id)
        return True

    def _horse_gone(self, job_id: str) -> bool:
        status = self._redis.hget(Job.key_for(job_id), "status")
        return as_str(status) in (JobStatus.STOPPED.value, JobStatus.FAILED.value, JobStatus.FINISHED.value,
                                 JobStatus.CANCELED.value)

    def _mark_ended_job(self, job_id: str, user: str, rule: str) -> CancelResult | None:
        key = job_key(job_id)
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                raw = pipe.hgetall(key)
                record = JobRecord.from_fields(_fields(raw))
                if record.state in ENDED_STATES:
                    return self._ended(record, rule)
                pipe.multi()
                self._write_cancelled(pipe, record, user, self._clock())
                pipe.execute()
            except redis.WatchError:
                return None
        return self._cancelled(record, user, rule, "it was stopped on its Docker host")

    def _write_cancelled(self, pipe: redis.client.Pipeline, record: JobRecord, user: str, now: float) -> None:
        extra = {**record.extra, "cancelled_by": user}
        pipe.hset(job_key(record.job_id), mapping={"state": JobState.CANCELLED, "finished_at": str(now),
                                                   "extra": json.dumps(extra, sort_keys=True)})
        event = JobEvent(job_id=record.job_id, type=CANCELLED_EVENT, at=now, message=f"cancelled by {user}")
        pipe.xadd(EVENTS_STREAM, event.to_fields(), maxlen=EVENTS_STREAM_MAXLEN, approximate=True)
        # A cancellation is the job's outcome: the audit trail has it beside succeeded and failed.
        entry = AuditEntry(at=now, user=user, channel="", kind="job", command="", decision="cancelled",
                           rule="", job_id=record.job_id, outcome=f"cancelled by {user} (was {record.state})")
        pipe.xadd(AUDIT_STREAM, entry.to_fields())

    @staticmethod
    def _ended(record: JobRecord, rule: str) -> CancelResult:
        return CancelResult(CancelOutcome.ENDED,
                            t("Job {} already ended ({}); it cannot be cancelled.", code(record.job_id), record.state),
                            rule, record)

    @staticmethod
    def _cancelled(record: JobRecord, user: str, rule: str, how: str) -> CancelResult:
        log.info("job cancelled job=%s by=%s was=%s rule=%r", record.job_id, user, record.state, rule)
        return CancelResult(CancelOutcome.CANCELLED, t("Cancelled job {}: {}.", code(record.job_id), plain(how)),
                            rule, record)
