"""An rq worker that runs regops tasks only: any other job is failed without being imported or run.

Anyone who can write to Redis can enqueue a job naming any importable function;
the JSON serializer stops pickle payloads, and this worker stops foreign functions
(and callbacks, which rq would import too).  The check happens in the worker
process, before rq forks the work horse that would import the function.

The forking worker also stops the way systemd stops it: SIGTERM reaches every
process of the unit, work horse included.  The horse ignores it and finishes its
job; the worker exits after it, or, once a grace period has passed (or at a second
signal), kills the horse and hands the job back to the queue for another worker.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from datetime import timedelta
from types import FrameType
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DeserializationError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import SimpleWorker, Worker

from workers.errors import JobFailed
from workers.events import EventWriter
from workers.kernel.actions import TASKS
from workers.kernel.jobs import TERMINAL_EVENTS, FailureReason, JobState
from workers.kernel.keys import heartbeat_key, job_key, queue_name
from workers.kernel.values import as_str
from workers.liveness import release_lock

log = logging.getLogger(__name__)

ALLOWED_FUNCTIONS = frozenset(TASKS.values())
REFUSED_MESSAGE = "refused: not a regops task"
_CALLBACK_FIELDS = ("success_callback_name", "failure_callback_name", "stopped_callback_name")
DEFAULT_GRACE_SECONDS = 60.0
"""How long a stopping worker lets its current job run before handing it back to the queue."""
MONITOR_INTERVAL_SECONDS = 5
"""How often the worker looks at its work horse (and, when stopping, at the grace period)."""


def refusal(job: Job, connection: redis.Redis) -> str | None:
    """Why ``job`` must not run (a sentence for the log), or None when it is a regops task."""
    try:
        func_name = job.func_name
        instance = job.instance
    except DeserializationError:
        return "its payload is not JSON"
    if func_name not in ALLOWED_FUNCTIONS:
        return f"function {func_name!r} is not a regops task"
    if instance is not None:
        return f"function {func_name!r} is bound to an instance"
    # Read from Redis rather than the Job object: rq imports a callback on attribute access.
    callbacks = [v for v in connection.hmget(job.key, list(_CALLBACK_FIELDS)) if v]
    if callbacks:
        return "it carries callbacks"
    return None


def refuse(worker: Worker | SimpleWorker, job: Job, queue: Queue, why: str) -> None:
    """Fail ``job`` in rq's books without running it; tell the bot if it knows the job."""
    log.warning("refusing job %s from %s: %s", job.id, queue.name, why)
    job.ended_at = now()
    with worker.connection.pipeline() as pipe:
        # Dequeuing parked the id on the intermediate queue; the horse would have removed it.
        pipe.lrem(queue.intermediate_queue_key, 1, job.id)
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        queue.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=REFUSED_MESSAGE, pipeline=pipe)
        Result.create_failure(job, job.failure_ttl, REFUSED_MESSAGE, worker_name=worker.name, pipeline=pipe)
        worker.increment_failed_job_count(pipe)
        pipe.execute()
    if worker.connection.exists(job_key(job.id)):
        EventWriter(worker.connection).failed(job.id, FailureReason.INTERNAL, REFUSED_MESSAGE)


class _Refusing:
    """Checks every job before rq imports or runs anything of it (mixed into rq's workers)."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        why = refusal(job, self.connection)  # type: ignore[attr-defined]
        if why is not None:
            refuse(self, job, queue, why)  # type: ignore[arg-type]
            return
        super().execute_job(job, queue)  # type: ignore[misc]

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        # A job that failed as expected was logged and reported by its task: no traceback for it.
        if len(exc_info) > 1 and isinstance(exc_info[1], JobFailed):
            log.info("job %s booked as failed in rq: %s", job.id, exc_info[1])
            return
        super().handle_exception(job, *exc_info)  # type: ignore[misc]


class SafeWorker(_Refusing, Worker):
    """rq's forking :class:`~rq.worker.Worker`, restricted to :data:`~workers.kernel.contracts.TASKS`,
    that finishes or hands back its job when stopped (see the module docstring)."""

    grace: float = DEFAULT_GRACE_SECONDS
    _hand_back_at: float | None = None
    _handing_back: str | None = None

    def setup_work_horse_signals(self) -> None:
        # rq restores SIGTERM's default action in the horse, so a SIGTERM sent to the whole
        # unit would kill the job half-way; the worker process decides the job's fate instead.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        super().request_stop(signum, frame)  # raises StopRequested when no job is running
        self._hand_back_at = time.monotonic() + self.grace
        self.job_monitoring_interval = 1
        log.warning(
            "worker %s: stopping; the current job may run %g s more before it is handed back",
            self.name,
            self.grace,
        )

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        requested = self._shutdown_requested_date
        # rq's own rule: a duplicate of the first signal (within a second) is not a second request.
        if requested is not None and now() - requested < timedelta(seconds=1):
            return
        if self.horse_pid:
            log.warning("worker %s: second stop signal; handing the current job back now", self.name)
            self._begin_hand_back()
            return
        super().request_force_stop(signum, frame)

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        super().maintain_heartbeats(job, execution)
        if self._hand_back_at is not None and time.monotonic() >= self._hand_back_at:
            log.warning("worker %s: grace period over; handing job %s back", self.name, job.id)
            self._begin_hand_back()

    def _begin_hand_back(self) -> None:
        job_id = self.get_current_job_id()
        self._hand_back_at = None
        if job_id is None or not self.horse_pid:
            return
        self._handing_back = job_id
        # The monitor loop then sees the horse die and calls handle_job_failure.
        self.kill_horse()

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: object = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        stopped = self._stopped_job_id == job.id  # cancelled: rq's stop command killed the horse
        super().handle_job_failure(
            job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution
        )
        if self._handing_back == job.id:
            self._handing_back = None
            hand_back(self, job)
        elif not self.is_horse:
            # Only the worker process gets here for a horse that died (OOM, SIGKILL, a stop
            # command): the task's own cleanup never ran.
            settle_dead_horse(self, job, report=not stopped)


def _reference(job: Job) -> str | None:
    spec = job.kwargs.get("spec") if isinstance(job.kwargs, dict) else None
    reference = spec.get("reference") if isinstance(spec, dict) else None
    return reference if isinstance(reference, str) and reference else None


def settle_dead_horse(worker: Worker, job: Job, *, report: bool) -> None:
    """Free what a killed horse held (its reference lock); with ``report``, fail a job still running.

    Not reported: a job cancelled by the bot, which writes its outcome itself once the horse is gone.
    """
    connection = worker.connection
    reference = _reference(job)
    if reference is not None:
        release_lock(connection, reference, job.id)
    state = connection.hget(job_key(job.id), "state")
    if report and as_str(state) == JobState.RUNNING:
        log.warning("worker %s: job %s lost its work horse; reporting it failed", worker.name, job.id)
        EventWriter(connection).failed(job.id, FailureReason.INTERNAL, "the worker running it stopped")
    elif not report:
        connection.delete(heartbeat_key(job.id))


def hand_back(worker: Worker, job: Job) -> None:
    """Put a job whose horse this worker killed back at the front of its queue, and tell the bot."""
    connection = worker.connection
    state = connection.hget(job_key(job.id), "state")
    if as_str(state) in TERMINAL_EVENTS:
        # It finished just before the horse died: nothing to hand back.
        return
    job.requeue(at_front=True)
    reference = _reference(job)
    if reference is not None:
        # The horse died holding the lock; the job keeps its id, so a re-run would take it anyway.
        release_lock(connection, reference, job.id)
    if connection.exists(job_key(job.id)):
        EventWriter(connection).handed_back(
            job.id, f"handed back to the queue: worker {worker.name} stopped before the job finished"
        )
    log.warning("worker %s: job %s handed back to %s", worker.name, job.id, job.origin)


class SafeSimpleWorker(_Refusing, SimpleWorker):
    """The same restriction without forking: jobs run in this process (tests, ``regops shell``)."""


def make_worker(
    hosts: str | Iterable[str],
    connection: redis.Redis,
    *,
    worker_class: type[SafeWorker | SafeSimpleWorker] = SafeWorker,
    name: str | None = None,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> SafeWorker | SafeSimpleWorker:
    """A safe worker listening on the queue of each Docker host in ``hosts``, JSON serializer.

    ``grace`` is how long a stopping (forking) worker lets its job run before handing it back.
    """
    names = [hosts] if isinstance(hosts, str) else list(hosts)
    queues = [Queue(queue_name(host), connection=connection, serializer=JSONSerializer) for host in names]
    worker = worker_class(
        queues,
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        job_monitoring_interval=MONITOR_INTERVAL_SECONDS,
    )
    if isinstance(worker, SafeWorker):
        worker.grace = grace
    return worker
