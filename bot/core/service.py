"""The front-end-neutral command path: parse → resolve → authorize → enqueue (or ask) → audit → reply.

No Slack and no Docker here: Slack and the console shell both call
:meth:`Service.handle` and render the :class:`Reply` their own way.  Every command,
whatever its fate, leaves one entry in the audit trail, with its text redacted.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

import redis

from bot.core import commands, explain
from bot.core.access import Decision, Policy
from bot.core.approvals import Approvals
from bot.core.audit import AuditLog
from bot.core.commands import Command
from bot.core.jobs import CancelOutcome, Jobs, is_live
from bot.core.metrics import Metrics
from bot.core.queueing import JobQueue, Origin
from workers.kernel import references
from workers.kernel.audit import AuditEntry
from workers.kernel.config import Config, RegistryConfig
from workers.kernel.errors import CredentialsInChat, RegopsError, UsageError
from workers.kernel.jobs import JobRecord, JobSpec
from workers.kernel.keys import idempotency_key, rq_workers_key
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL_SECONDS = 3600
"""How long a request's idempotency key (Slack's ``trigger_id``) maps to the job it made."""


class ReplyKind(str, Enum):
    QUEUED = "queued"
    APPROVAL = "approval"
    HELP = "help"
    ANSWER = "answer"
    DUPLICATE = "duplicate"
    USAGE_ERROR = "usage_error"
    CREDENTIALS = "credentials"
    DENIED = "denied"
    ERROR = "error"


@dataclass(frozen=True)
class Request:
    """One command as a front end received it. ``user_id`` is who typed it."""

    user_id: str
    text: str
    channel_id: str | None = None
    frontend: str = "slack"
    response_url: str | None = None
    idempotency_key: str | None = None
    """Identifies one request across redeliveries (Slack's ``trigger_id``): a repeat makes no second job."""


@dataclass(frozen=True)
class Reply:
    """What the front end shows the person right away (ephemerally in Slack)."""

    kind: ReplyKind
    text: str
    job: JobRecord | None = None

    @property
    def queued(self) -> bool:
        return self.kind is ReplyKind.QUEUED


def _action_word(text: str) -> str:
    """The command's action for metrics, or "unknown" (bad input must not mint new label values)."""
    words = commands.normalize(text).split()
    if words and words[0].lower() == commands.SLASH_COMMAND:
        words = words[1:]
    word = words[0].lower() if words else ""
    return word if word in commands.ACTIONS else "unknown"


def new_job_id() -> str:
    return secrets.token_hex(6)


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


class Service:
    def __init__(
        self,
        config: Config,
        policy: Policy,
        queue: JobQueue,
        *,
        audit: AuditLog,
        approvals: Approvals,
        clock: Callable[[], float] = time.time,
        jobs: Jobs,
        job_ids: Callable[[], str] = new_job_id,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self._policy = policy
        self._queue = queue
        self._audit = audit
        self._approvals = approvals
        self._clock = clock
        self._job_ids = job_ids
        self._metrics = metrics
        self.jobs = jobs

    def handle(self, request: Request) -> Reply:
        try:
            return self._handle(request)
        except CredentialsInChat as exc:
            # The text is neither logged nor echoed; the audit trail gets it redacted.
            log.warning("command refused: credentials in chat user=%s channel=%s", request.user_id,
                        request.channel_id)
            self._record(request, "refused", "credentials in chat")
            return Reply(ReplyKind.CREDENTIALS, exc.user_message)
        except UsageError as exc:
            log.info("command invalid user=%s channel=%s", request.user_id, request.channel_id)
            self._record(request, "invalid", "")
            return Reply(ReplyKind.USAGE_ERROR, exc.user_message)
        except redis.RedisError:
            ref = secrets.token_hex(4)
            log.exception("command failed: Redis unavailable ref=%s user=%s", ref, request.user_id)
            return Reply(
                ReplyKind.ERROR,
                f"regops could not reach its job queue, so nothing was queued. Try again in a moment "
                f"(reference `{ref}`).",
            )
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("command failed unexpectedly ref=%s user=%s", ref, request.user_id)
            return Reply(
                ReplyKind.ERROR,
                f"Something went wrong on regops' side and nothing was queued (reference `{ref}`).",
            )

    def _handle(self, request: Request) -> Reply:
        command = commands.parse(request.text)
        log.info("command received user=%s channel=%s action=%s text=%r", request.user_id,
                 request.channel_id, command.action, command.text)
        if command.action == "help":
            allowed = self._policy.permitted_actions(request.user_id, request.channel_id)
            reply = Reply(ReplyKind.HELP, commands.help_text(command.topic, actions=allowed))
            self._record(request, "answered", "help is open to everyone")
            return reply
        if command.action == "whoami":
            identity = self._policy.whoami(request.user_id, request.channel_id)
            self._record(request, "answered", "whoami is open to everyone")
            return Reply(ReplyKind.ANSWER, explain.whoami_text(identity))
        if command.action in ("status", "jobs", "cancel", "hosts"):
            return self._about_jobs(request, command)
        registry = self._registry(command)
        host = self._host(command)
        reference = self._reference(command, registry)
        if command.action == "can-i":
            action = command.subject_action or ""
            decision = self._decide(request, action, command, registry, host)
            self._record(request, "answered", decision.rule)
            return Reply(ReplyKind.ANSWER, explain.can_i_text(decision, action,
                                                              reference or f"registry {registry.server}"))

        decision = self._decide(request, command.action, command, registry, host)
        target = reference or registry.server
        if not decision.allowed:
            log.info("command denied user=%s action=%s target=%s rule=%r code=%s unresolved=%s",
                     request.user_id, command.action, target, decision.rule, decision.code.value,
                     ",".join(decision.unresolved_groups) or "-")
            self._record(request, "denied", decision.rule)
            return Reply(ReplyKind.DENIED, f":no_entry: {decision.reason}")
        return self._submit(request, command, registry, host, reference, decision)

    def _about_jobs(self, request: Request, command: Command) -> Reply:
        user, channel = request.user_id, request.channel_id
        if command.action == "jobs":
            limit = command.limit or commands.JOBS_DEFAULT_LIMIT
            records = self.jobs.recent(user, channel, limit=limit, mine=command.mine, image=command.image)
            self._record(request, "answered", "jobs: own jobs and jobs the roles allow")
            return Reply(ReplyKind.ANSWER, explain.jobs_text(records, mine=command.mine, image=command.image,
                                                             limit=limit))
        if command.action == "hosts":
            decisions = {host: self._policy.decide(user, "hosts", channel=channel, host=host)
                         for host in self._config.hosts}
            shown = [host for host, decision in decisions.items() if decision.allowed]
            if not shown:
                decision = decisions[self._config.default_host]
                self._record(request, "denied", decision.rule)
                return Reply(ReplyKind.DENIED, f":no_entry: {decision.reason}")
            self._record(request, "answered", decisions[shown[0]].rule)
            return Reply(ReplyKind.ANSWER, explain.hosts_text(self.jobs.hosts(shown)))
        job_id = command.job_id or ""
        if command.action == "cancel":
            result = self.jobs.cancel(job_id, user, channel)
            if result.outcome is CancelOutcome.REFUSED:
                self._record(request, "denied", result.rule, job_id)
                return Reply(ReplyKind.DENIED, f":no_entry: {result.message}")
            decided = "allowed" if result.outcome is CancelOutcome.CANCELLED else "answered"
            self._record(request, decided, result.rule or result.outcome.value, job_id)
            return Reply(ReplyKind.ANSWER, result.message)
        record = self.jobs.get(job_id)
        if record is None:
            self._record(request, "answered", "no such job", job_id)
            return Reply(ReplyKind.ANSWER, f"There is no job `{job_id}` (or it is too old to show).")
        decision = self.jobs.decide(user, "status", record, channel)
        if not decision.allowed:
            self._record(request, "denied", decision.rule, job_id)
            return Reply(ReplyKind.DENIED, f":no_entry: {decision.reason}")
        self._record(request, "answered", decision.rule, job_id)
        return Reply(ReplyKind.ANSWER, explain.status_text(record, self.jobs.approval(job_id), self._clock()))

    def _decide(self, request: Request, action: str, command: Command, registry: RegistryConfig,
                host: str) -> Decision:
        return self._policy.decide(request.user_id, action, command.image, command.tag,
                                   channel=request.channel_id, registry=registry.name, host=host)

    def _submit(self, request: Request, command: Command, registry: RegistryConfig, host: str,
                reference: str | None, decision: Decision) -> Reply:
        job_id = self._job_ids()
        source = command.source
        if command.action == "push" and source is None:
            source = f"{command.image}:{command.tag}"
        spec = JobSpec(job_id=job_id, action=command.action, registry=registry.name,
                       server=registry.server, reference=reference, source=source,
                       requester=request.user_id)
        extra = {"server": registry.server}
        if command.image and command.tag:
            extra.update(image=command.image, tag=command.tag)  # what permissions on the job are decided on
        record = JobRecord(job_id=job_id, action=command.action, registry=registry.name, host=host,
                           requester=request.user_id, reference=reference, source=source,
                           queued_at=self._clock(), extra=extra)
        origin = Origin(frontend=request.frontend, user=request.user_id, channel=request.channel_id,
                        response_url=request.response_url)
        timeout = self._config.timeouts.for_action(command.action)
        what = f"{command.action} of " + (f"`{reference}`" if reference else f"registry `{registry.server}`")
        # One round trip before the transaction: claim the request's idempotency key and read
        # which workers the host has, whose heartbeats then ride along in the transaction.
        first = self._queue.connection.pipeline(transaction=False)
        key = idempotency_key(request.idempotency_key) if request.idempotency_key else None
        if key is not None:
            first.set(key, job_id, nx=True, ex=IDEMPOTENCY_TTL_SECONDS)
            first.get(key)
        first.smembers(rq_workers_key(host))
        answers = first.execute()
        if key is not None and not answers[0]:
            return self._duplicate(request, as_str(answers[1]))
        workers = sorted(as_str(member) for member in answers[-1])
        try:
            return self._write(request, command, record, spec, origin, timeout, decision, what, workers)
        except Exception:
            if key is not None:
                self._forget(key)  # nothing was queued: a retry of this request must be free to queue it
            raise

    def _write(self, request: Request, command: Command, record: JobRecord, spec: JobSpec, origin: Origin,
               timeout: int, decision: Decision, what: str, workers: list[str]) -> Reply:
        job_id, host, reference = record.job_id, record.host, record.reference
        pipe = self._queue.pipeline()
        if decision.approval is not None:
            self._approvals.request(record, spec, origin, decision.approval, timeout, pipeline=pipe)
            self._record(request, "needs_approval", decision.rule, job_id, pipeline=pipe)
            pipe.execute()
            log.info("approval requested job=%s user=%s action=%s target=%s rule=%r", job_id,
                     request.user_id, command.action, reference or spec.server, decision.rule)
            return Reply(ReplyKind.APPROVAL,
                         f":lock: The {what} needs approval ({decision.reason}). The request `{job_id}` "
                         f"has been posted in this channel; the job is queued once it is approved.",
                         job=record)
        self._queue.enqueue(record, spec, origin, timeout, pipeline=pipe)
        self._record(request, "queued", decision.rule, job_id, pipeline=pipe)
        pipe.llen(self._queue.queue(host).key)
        for worker in workers:
            pipe.hmget(worker, ["last_heartbeat", "death"])
        results = pipe.execute()
        beats = results[len(results) - len(workers):]
        position = results[len(results) - len(workers) - 1]
        now = self._clock()
        live = sum(1 for heartbeat, death in beats if not death and is_live(as_str(heartbeat), now))
        log.info("job enqueued job=%s user=%s action=%s target=%s host=%s position=%s live_workers=%d rule=%r",
                 job_id, request.user_id, command.action, reference or spec.server, host, position, live,
                 decision.rule)
        text = (f":inbox_tray: Queued {what} on host `{host}` as job `{job_id}`, position {position} in the "
                f"queue for {host}.")
        if not live:
            text += (f" :warning: No worker is live for host {host} right now: the job waits in the queue "
                     f"until one starts.")
        text += f" Its progress and result will follow here; job {job_id} can be cancelled with " \
                f"`/registry cancel {job_id}`."
        return Reply(ReplyKind.QUEUED, text, job=record)

    def _duplicate(self, request: Request, job_id: str) -> Reply:
        log.info("command repeated user=%s job=%s: same request delivered again, nothing queued",
                 request.user_id, job_id)
        self._record(request, "answered", "repeated request", job_id)
        return Reply(ReplyKind.DUPLICATE,
                     f":repeat: This request was already received: already queued as job {job_id} "
                     f"(`{job_id}`). Nothing new was queued.")

    def _forget(self, key: str) -> None:
        try:
            self._queue.connection.delete(key)
        except redis.RedisError:
            log.warning("could not release idempotency key %s; a retry of that request within %d s is refused",
                        key, IDEMPOTENCY_TTL_SECONDS)

    def _record(self, request: Request, decision: str, rule: str, job_id: str = "",
                pipeline: redis.client.Pipeline | None = None) -> None:
        entry = AuditEntry(at=self._clock(), user=request.user_id, channel=request.channel_id or "",
                           kind="command", command=commands.redact(request.text), decision=decision,
                           rule=rule, job_id=job_id, outcome="")
        try:
            self._audit.record(entry, pipeline=pipeline)
            if self._metrics is not None:
                self._metrics.command(_action_word(request.text), decision, pipeline=pipeline)
        except redis.RedisError:
            if pipeline is not None:
                raise
            log.exception("audit: could not record a %s command of user %s", decision, request.user_id)

    def _registry(self, command: Command) -> RegistryConfig:
        name = command.registry or self._config.default_registry
        registry = self._config.registries.get(name)
        if registry is None:
            raise UsageError(
                f"unknown registry `{name}`. Configured registries: {_names(self._config.registries)}. "
                f"Use `--registry NAME` with one of them, or leave it out for the default "
                f"(`{self._config.default_registry}`)."
            )
        return registry

    def _host(self, command: Command) -> str:
        host = command.host or self._config.default_host
        if host not in self._config.hosts:
            raise UsageError(
                f"unknown Docker host `{host}`. Configured hosts: {_names(self._config.hosts)}. "
                f"Use `--host NAME` with one of them, or leave it out for the default "
                f"(`{self._config.default_host}`)."
            )
        return host

    @staticmethod
    def _reference(command: Command, registry: RegistryConfig) -> str | None:
        if command.image is None or command.tag is None:
            return None
        try:
            return references.full_reference(registry.server, registry.namespace, command.image, command.tag)
        except RegopsError as exc:
            raise UsageError(exc.user_message) from exc
