"""An rq worker that runs regops tasks only: any other job is failed without being imported or run.

Anyone who can write to Redis can enqueue a job naming any importable function;
the JSON serializer stops pickle payloads, and this worker stops foreign functions
(and callbacks, which rq would import too).  The check happens in the worker
process, before rq forks the work horse that would import the function.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from rq import Queue
from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import SimpleWorker, Worker

from workers.contracts import TASKS, FailureReason, job_key, queue_name
from workers.events import EventWriter

log = logging.getLogger(__name__)

ALLOWED_FUNCTIONS = frozenset(TASKS.values())
REFUSED_MESSAGE = "refused: not a regops task"
_CALLBACK_FIELDS = ("success_callback_name", "failure_callback_name", "stopped_callback_name")


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


class SafeWorker(_Refusing, Worker):
    """rq's forking :class:`~rq.worker.Worker`, restricted to :data:`~workers.contracts.TASKS`."""


class SafeSimpleWorker(_Refusing, SimpleWorker):
    """The same restriction without forking: jobs run in this process (tests, ``regops shell``)."""


def make_worker(
    hosts: str | Iterable[str],
    connection: redis.Redis,
    *,
    worker_class: type[SafeWorker | SafeSimpleWorker] = SafeWorker,
    name: str | None = None,
) -> SafeWorker | SafeSimpleWorker:
    """A safe worker listening on the queue of each Docker host in ``hosts``, JSON serializer."""
    names = [hosts] if isinstance(hosts, str) else list(hosts)
    queues = [Queue(queue_name(host), connection=connection, serializer=JSONSerializer) for host in names]
    return worker_class(queues, connection=connection, serializer=JSONSerializer, name=name)
