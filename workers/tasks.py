"""rq entry points, one per action: parse the job, run it with docker_ops, report it as events.

The functions named in :data:`workers.kernel.contracts.TASKS` take the JSON job spec and
return a small JSON-able dict.  What they need from the process (Redis, a Docker
client, the registry credentials) comes from the :class:`TaskContext` the composition
root installs with :func:`install` before the worker starts; nothing here connects
at import time.

Around the work itself: the job's heartbeat runs from its ``started`` event to its
outcome; a push, pull or tag first takes the lock on its full reference (waiting,
visibly, for the job holding it); transient failures are retried with backoff,
each retry announced in the job's message.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import redis
from rq.timeouts import JobTimeoutException

from workers import docker_ops, guard_checks, registry_jobs
from workers.credentials import CredentialStore, RegistryCredentials
from workers.errors import CredentialsError, JobFailed, WorkerError
from workers.events import EventWriter
from workers.kernel.actions import HOST_ACTIONS, LOCKED_ACTIONS, Action
from workers.kernel.config import Retries
from workers.kernel.expectations import Expectation, expect
from workers.kernel.guards import Guards
from workers.kernel.history import Change, TagChange, current_digest, read_history
from workers.kernel.jobs import FAILURE_MESSAGES, FailureReason, JobSpec
from workers.kernel.keys import HEARTBEAT_INTERVAL_SECONDS
from workers.kernel.references import split_reference
from workers.liveness import Heartbeat, ReferenceLock
from workers.progress import Progress
from workers.registry.client import client_for
from workers.registry_jobs import ClientFactory, RegistryWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskContext:
    """Process-level dependencies of the tasks.

    ``docker_api`` is a factory: each job gets its own client (and closes it), so a
    forked work horse never shares the parent's HTTP connection to the engine.
    """

    redis: redis.Redis
    docker_api: Callable[[], docker.APIClient] | None
    """None on a registry-only worker (it serves the registry queue and needs no engine)."""
    credentials: CredentialStore
    progress_interval: float = 1.0
    retries: Retries = field(default_factory=Retries)
    heartbeat_interval: float = HEARTBEAT_INTERVAL_SECONDS
    registry_client: ClientFactory = client_for
    """How registry jobs get a client of the registry's API (tests count its requests)."""
    guards: Guards = field(default_factory=Guards)
    """The config's guard rails, checked right before a job writes."""
    namespaces: Mapping[str, str] = field(default_factory=dict)
    """Registry config name -> its namespace (how a reference's image name is read for the guards)."""


_context: TaskContext | None = None


def install(context: TaskContext) -> None:
    """Make ``context`` the one the tasks of this process (and of its forks) use."""
    global _context
    _context = context


def uninstall() -> None:
    global _context
    _context = None


def current() -> TaskContext:
    if _context is None:
        raise RuntimeError("workers.tasks has no TaskContext; call workers.tasks.install() first")
    return _context


@dataclass(frozen=True)
class Outcome:
    digest: str | None = None
    message: str | None = None
    changes: tuple[TagChange, ...] = ()
    """Tag changes the job made, for the tags' history (written with its success)."""
    answer: str | None = None
    """A query's answer (JSON)."""


Work = Callable[[JobSpec, TaskContext, docker.APIClient | None, EventWriter], Outcome]



def worker_name() -> str:
    """The rq worker's name (rq exports it to its work horse), else host:pid."""
    return os.environ.get("RQ_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}"


def push(spec: dict[str, Any]) -> dict[str, Any]:
    """Tag the local source image as the reference, log in, push; succeeded carries the digest."""
    return _run(Action.PUSH, spec, _push)


def pull(spec: dict[str, Any]) -> dict[str, Any]:
    """Pull the reference onto this host's engine; succeeded carries the digest."""
    return _run(Action.PULL, spec, _pull)


def tag(spec: dict[str, Any]) -> dict[str, Any]:
    """Tag the local source image as the reference (no registry involved)."""
    return _run(Action.TAG, spec, _tag)


def login(spec: dict[str, Any]) -> dict[str, Any]:
    """Check this worker's credentials for the job's registry."""
    return _run(Action.LOGIN, spec, _login)


def promote(spec: dict[str, Any]) -> dict[str, Any]:
    """Point a tag at exactly the manifest another tag or digest points at, over the registry's API."""
    return _run(Action.PROMOTE, spec, _registry_job)


def delete(spec: dict[str, Any]) -> dict[str, Any]:
    """Delete a tag's manifest from the registry."""
    return _run(Action.DELETE, spec, _registry_job)


def rollback(spec: dict[str, Any]) -> dict[str, Any]:
    """Point a tag back at a digest from its history."""
    return _run(Action.ROLLBACK, spec, _registry_job)


def tags(spec: dict[str, Any]) -> dict[str, Any]:
    """Answer ``tags``: the image's tags with their digests."""
    return _run(Action.TAGS, spec, _registry_job)


def inspect(spec: dict[str, Any]) -> dict[str, Any]:
    """Answer ``inspect``: what a tag or digest is."""
    return _run(Action.INSPECT, spec, _registry_job)


def _registry_job(spec: JobSpec, context: TaskContext, api: docker.APIClient | None,
                  events: EventWriter) -> Outcome:
    work = RegistryWork(context.credentials, context.redis, time.time, context.registry_client,
                        guards=context.guards, namespaces=context.namespaces)
    try:
        done = registry_jobs.JOBS[spec.action](spec, work)
    finally:
        work.close()
    return Outcome(digest=done.digest, message=done.message, changes=done.changes, answer=done.answer)


def _push(spec: JobSpec, context: TaskContext, api: docker.APIClient | None, events: EventWriter) -> Outcome:
    assert api is not None
    reference = _required(spec.reference, "reference", spec)
    creds = _credentials(spec, context)
    source = spec.source or reference
    there = _already_there(spec, context, api, creds, source)
    if there is not None:
        return Outcome(digest=there, message=f"{reference} already pointed at {registry_jobs.short(there)} "
                       "(an immutable tag): nothing was pushed")
    if source != reference:
        docker_ops.tag(api, source, reference)
    docker_ops.login(api, creds)
    _server, repository, tag_name = split_reference(reference)
    expect(context.redis, spec.registry, repository, tag_name, Expectation(spec.job_id, spec.requester, spec.action))
    digest = docker_ops.push(api, reference, creds, _progress_reporter(spec, context, events))
    previous = current_digest(read_history(context.redis, reference, 1))
    changes = () if not digest or digest == previous else (
        TagChange(at=time.time(), reference=reference, digest=digest, previous=previous, who=spec.requester,
                  how=Change.PUSH.value, job_id=spec.job_id),)
    return Outcome(digest=digest, message=f"pushed {reference}", changes=changes)


def _already_there(spec: JobSpec, context: TaskContext, api: docker.APIClient, creds: RegistryCredentials,
                   source: str) -> str | None:
    """The guard rails of a push, checked against the registry before anything is tagged or sent.

    A later stage of a promotion path is never pushed.  A tag an immutable rule covers that
    exists already is pushed only when the local image is that very manifest: then nothing needs
    pushing and its digest is returned.  None when the push goes ahead.
    """
    target = guard_checks.target_of(spec, context.namespaces)
    if target is None or not target[2]:
        return None
    path = context.guards.path_for(*target)
    if path is not None and not spec.override:  # break-glass passes a path, never an immutable tag
        raise guard_checks.path_failure(path, target[2], "a push may not write it")
    rule = context.guards.immutable_rule(*target)
    if rule is None:
        return None
    _server, repository, tag_name = split_reference(spec.reference or "")
    with context.registry_client(creds) as client:
        current = client.head_manifest(repository, tag_name)
    if current is None:
        return None
    local = docker_ops.local_digest(api, source, docker_ops.split_reference(spec.reference or "")[0])
    guard_checks.refuse_overwrite(rule, tag_name, current, local)
    return current


def _pull(spec: JobSpec, context: TaskContext, api: docker.APIClient | None, events: EventWriter) -> Outcome:
    assert api is not None
    reference = _required(spec.reference, "reference", spec)
    creds = _credentials(spec, context)
    digest = docker_ops.pull(api, reference, creds, _progress_reporter(spec, context, events))
    return Outcome(digest=digest, message=f"pulled {reference}")


def _tag(spec: JobSpec, context: TaskContext, api: docker.APIClient | None, events: EventWriter) -> Outcome:
    assert api is not None
    reference = _required(spec.reference, "reference", spec)
    source = _required(spec.source, "source", spec)
    docker_ops.tag(api, source, reference)
    return Outcome(message=f"tagged {source} as {reference}")


def _login(spec: JobSpec, context: TaskContext, api: docker.APIClient | None, events: EventWriter) -> Outcome:
    assert api is not None
    creds = _credentials(spec, context)
    docker_ops.login(api, creds)
    return Outcome(message=f"logged in to {creds.server} as {creds.username}")


def _run(action: Action, data: Mapping[str, Any], work: Work) -> dict[str, Any]:
    context = current()
    events = EventWriter(context.redis)
    try:
        spec = _spec_of(action, data)
    except ValueError as exc:
        raise JobFailed(_reject_payload(action, data, events, str(exc))) from None
    log.info(
        "job %s: %s %s started (requested by %s)", spec.job_id, action.value, _subject(spec), spec.requester
    )
    heartbeat = Heartbeat(context.redis, spec.job_id, worker_name(), context.heartbeat_interval)
    lock = (
        ReferenceLock(context.redis, spec.reference, spec.job_id) if _locks(spec) and spec.reference else None
    )
    events.started(spec.job_id, worker=heartbeat.worker)
    heartbeat.start()
    try:
        if lock is not None:
            heartbeat.keep(lock)
            _acquire(lock, spec, events)
            heartbeat.beat()  # the heartbeat (written by `started`) must not expire before the new lock
        guard_checks.refuse_if_frozen(spec, context.guards, context.redis, context.namespaces, time.time())
        outcome = _attempts(spec, context, events, work)
    except WorkerError as exc:
        heartbeat.stop()
        raise JobFailed(_failed(spec, events, exc)) from None
    except JobTimeoutException:
        log.warning("job %s: %s of %s timed out", spec.job_id, action.value, _subject(spec))
        heartbeat.stop()
        events.failed(spec.job_id, FailureReason.TIMED_OUT, f"the {action.value} of {_subject(spec)} timed out")
        raise
    except Exception:
        ref = secrets.token_hex(4)
        log.exception("job %s: %s crashed (ref %s)", spec.job_id, action.value, ref)
        heartbeat.stop()
        raise JobFailed(_crashed(spec, events, ref)) from None
    else:
        # Stopped before the outcome is written, so no renewal can bring the key back after it.
        heartbeat.stop()
        events.succeeded(spec.job_id, digest=outcome.digest, message=outcome.message, changes=outcome.changes,
                         answer=outcome.answer)
    finally:
        heartbeat.stop()
        if lock is not None:
            lock.release()
    log.info("job %s: %s succeeded: %s", spec.job_id, action.value, outcome.message)
    result: dict[str, Any] = {"job_id": spec.job_id, "ok": True, "message": outcome.message}
    if outcome.digest:
        result["digest"] = outcome.digest
    return result


def _spec_of(action: Action, data: Mapping[str, Any]) -> JobSpec:
    """The job spec of this task's payload; ValueError when it is not one, or for another task."""
    try:
        spec = JobSpec.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    if spec.action != action.value:
        raise ValueError(f"action {spec.action!r} sent to the {action.value} task")
    return spec


def _failed(spec: JobSpec, events: EventWriter, exc: WorkerError) -> dict[str, Any]:
    """An expected failure: its reason and user-safe message become the job's outcome."""
    log.warning("job %s: %s failed: %s: %s (retryable: %s)", spec.job_id, spec.action, exc.reason,
                exc.user_message, exc.retryable)
    events.failed(spec.job_id, exc.reason, exc.user_message)
    return {"job_id": spec.job_id, "ok": False, "reason": exc.reason, "message": exc.user_message,
            "retryable": exc.retryable}


def _crashed(spec: JobSpec, events: EventWriter, ref: str) -> dict[str, Any]:
    """An unexpected error (logged with its traceback under ``ref``): the person sees the reference only."""
    message = f"internal error on the worker (ref {ref})"
    events.failed(spec.job_id, FailureReason.INTERNAL, message)
    return {"job_id": spec.job_id, "ok": False, "reason": FailureReason.INTERNAL.value, "message": message}


def _locks(spec: JobSpec) -> bool:
    return spec.action in LOCKED_ACTIONS


def _acquire(lock: ReferenceLock, spec: JobSpec, events: EventWriter) -> None:
    """Wait for the reference lock; the wait shows in the job's message and counts against its timeout."""

    def waiting(holder: str) -> None:
        events.progress(spec.job_id, message=f"waiting for job {holder} (same reference)")

    def clear() -> None:
        events.progress(spec.job_id, message="")

    lock.acquire(on_wait=waiting, on_acquired_after_wait=clear)


def _attempts(spec: JobSpec, context: TaskContext, events: EventWriter, work: Work) -> Outcome:
    """Run ``work`` until it succeeds, fails for good, or the policy's attempts are used up.

    Every action is safe to repeat: a push uploads only the layers the registry lacks,
    a pull only those the engine lacks, tag and login are idempotent, a promote or rollback
    re-sends what the registry then already has, and a delete whose first attempt went through
    finds the tag gone (and says so).
    """
    policy = context.retries
    attempt = 1
    while True:
        # A fresh client per attempt: the engine may have restarted in between.
        api: docker.APIClient | None = None
        try:
            if spec.action in HOST_ACTIONS:
                if context.docker_api is None:
                    raise WorkerError(FailureReason.ENGINE_UNREACHABLE,
                                      "this worker serves only the registry queue and has no Docker engine")
                api = docker_ops.connect(context.docker_api)
            return work(spec, context, api, events)
        except WorkerError as exc:
            if not exc.retryable:
                raise
            if attempt >= policy.attempts:
                if policy.attempts > 1:
                    raise WorkerError(
                        exc.reason, f"{exc.user_message} (gave up after {attempt} attempts)", retryable=True
                    ) from exc
                raise
            delay = policy.delay(attempt)
            attempt += 1
            log.warning(
                "job %s: %s; retry %d of %d in %g s",
                spec.job_id,
                exc.user_message,
                attempt - 1,
                policy.attempts - 1,
                delay,
            )
            events.progress(
                spec.job_id,
                message=f"retrying in {delay:g} s (attempt {attempt} of {policy.attempts}): "
                f"{FAILURE_MESSAGES[exc.reason]}",
            )
        finally:
            if api is not None:
                api.close()
        time.sleep(delay)
        events.progress(spec.job_id, message=f"attempt {attempt} of {policy.attempts}")


def _reject_payload(action: Action, data: Mapping[str, Any], events: EventWriter, why: str) -> dict[str, Any]:
    job_id = data.get("job_id") if isinstance(data, Mapping) else None
    log.error("rejected %s job %s: invalid payload: %s", action.value, job_id, why)
    message = "invalid job payload"
    if isinstance(job_id, str) and job_id:
        events.failed(job_id, FailureReason.INTERNAL, message)
    return {"job_id": job_id, "ok": False, "reason": FailureReason.INTERNAL.value, "message": message}


def _credentials(spec: JobSpec, context: TaskContext) -> RegistryCredentials:
    creds = context.credentials.get(spec.registry)
    if spec.server and spec.server != creds.server:
        # Bot and worker disagree on where this registry is: do not guess which is right.
        raise CredentialsError(
            f"registry '{spec.registry}' is {spec.server} for the bot but {creds.server} on this worker"
        )
    return creds


def _required(value: str | None, name: str, spec: JobSpec) -> str:
    if not value:
        raise WorkerError(FailureReason.INVALID_REFERENCE, f"the {spec.action} job has no {name}")
    return value


def _subject(spec: JobSpec) -> str:
    return spec.reference or spec.server or spec.registry


def _progress_reporter(
    spec: JobSpec, context: TaskContext, events: EventWriter
) -> Callable[[Mapping[str, Any]], None]:
    tracker = Progress(interval=context.progress_interval)

    def report(line: Mapping[str, Any]) -> None:
        percent = tracker.feed(line)
        if percent is not None:
            events.progress(spec.job_id, percent)

    return report
