"""The front-end-neutral command path: parse → resolve → authorize → enqueue (or ask) → audit → reply.

No Slack and no Docker here: Slack and the console shell both call :meth:`Service.handle`
with what a person typed, and Slack calls :meth:`Service.click` with a button they
pressed; each front end renders the :class:`~bot.core.replies.Reply` its own way.  Every
command and every click, whatever its fate, leaves its entry in the audit trail, with
typed text redacted, but for one: past the first refusal of a run by the rate limit, refused
commands are counted in the metrics only (see :mod:`bot.core.limits`), so that a flood cannot
grow the trail at its own pace.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace

import redis

from bot.core import explain, outbox, registry_views
from bot.core.access import Decision, Policy
from bot.core.announcements import Announcement
from bot.core.approvals import Approvals, Outcome
from bot.core.audit import AuditLog
from bot.core.errors import CommandError, CredentialsInChat, message_of, unknown_name
from bot.core.freeze_commands import FreezeCommands
from bot.core.grammar.credentials import (
    AUDIT_TEXT_LIMIT,
    audit_text,
    normalize,
    readable_part,
    refuse_credentials,
)
from bot.core.grammar.help import help_text
from bot.core.grammar.parser import parse
from bot.core.grammar.spec import COMMAND_WORD, JOBS_DEFAULT_LIMIT, Command
from bot.core.guard_rails import IMMUTABLE_RAIL, GuardRails, GuardRefusal, Write
from bot.core.jobs import CancelOutcome, Jobs, is_live
from bot.core.limits import Limiter, Refusal
from bot.core.metrics import Metrics
from bot.core.queueing import JobQueue, Origin, waiting_note
from bot.core.registry_plans import Plan, RegistryPlanner
from bot.core.registry_plans import Refusal as PlanRefusal
from bot.core.replies import Click, ClickAction, Reply, ReplyKind, Request
from bot.core.subscription_commands import SubscriptionCommands
from bot.core.subscriptions import SubscriptionStore
from bot.core.text import Icon, Text, code, icon, plain, t, user_input
from bot.core.text import command as typed
from workers.kernel import references
from workers.kernel.actions import (
    ACTIONS,
    FREEZE,
    FREEZE_COMMANDS,
    HOST_ACTIONS,
    LOCKED_ACTIONS,
    QUERY_ACTIONS,
    READ_ACTIONS,
    REGISTRY_ACTIONS,
    REGISTRY_QUEUE,
    SUBSCRIBE,
    SUBSCRIPTION_COMMANDS,
)
from workers.kernel.audit import AuditEntry
from workers.kernel.config import ApprovalRule, Config, RegistryConfig
from workers.kernel.config.patterns import matches_any
from workers.kernel.errors import RegopsError, UsageError
from workers.kernel.history import current_digest, read_history
from workers.kernel.jobs import JobRecord, JobSpec
from workers.kernel.keys import idempotency_key, rq_workers_key
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

OVERRIDE_EXPIRES_SECONDS = 1800
"""How long a break-glass override waits for its second approval when no approvals rule sets it."""

BREAK_GLASS_RULE = "break-glass"
"""The name a break-glass override's approval request goes by (it is none of ``access.approvals``)."""

IDEMPOTENCY_TTL_SECONDS = 3600
"""How long a request's idempotency key (Slack's ``trigger_id``) maps to the job it made."""

REGISTRY_COMMANDS = frozenset((*REGISTRY_ACTIONS, *READ_ACTIONS))
"""Commands about the registry itself (planned by :class:`~bot.core.registry_plans.RegistryPlanner`)."""

_QUIET_APPROVAL_OUTCOMES = frozenset({Outcome.RECORDED, Outcome.APPROVED, Outcome.REJECTED})
"""Click outcomes the job's own message shows: the clicker needs no separate answer."""


def _action_word(text: str) -> str:
    """The command's action for metrics, or "unknown" (bad input must not mint new label values)."""
    words = normalize(text).split()
    if words and words[0].lower() == COMMAND_WORD:
        words = words[1:]
    word = words[0].lower() if words else ""
    return word if word in ACTIONS else "unknown"


def new_job_id() -> str:
    return secrets.token_hex(6)


def _denied(reason: Text) -> Text:
    return icon(Icon.DENIED) + reason


def _no_worker(host: str) -> Text:
    if host == REGISTRY_QUEUE:
        return t(" {}No registry worker is live right now: the job waits in the queue until one starts "
                 "(a worker started with {} or {} serves it).", icon(Icon.WARNING), code("--registry-only"),
                 code("--host NAME"))
    return t(" {}No worker is live for host {} right now: the job waits in the queue until one starts.",
             icon(Icon.WARNING), host)


class Service:
    def __init__(
        self,
        config: Config,
        policy: Policy,
        queue: JobQueue,
        *,
        audit: AuditLog,
        approvals: Approvals,
        jobs: Jobs,
        clock: Callable[[], float] = time.time,
        job_ids: Callable[[], str] = new_job_id,
        metrics: Metrics | None = None,
        limits: Limiter | None = None,
        subscriptions: SubscriptionStore | None = None,
    ) -> None:
        self._config = config
        self._policy = policy
        self._queue = queue
        self._audit = audit
        self._approvals = approvals
        self._clock = clock
        self._job_ids = job_ids
        self._metrics = metrics
        self._limits = limits
        self._subscriptions = None if subscriptions is None else SubscriptionCommands(
            config, policy, subscriptions, self._record, clock)
        self.jobs = jobs
        self._planner = RegistryPlanner(config, policy, lambda reference: read_history(queue.connection, reference))
        self._freezes = FreezeCommands(config, policy, queue.connection, self._record, clock)
        self._guards = GuardRails(config, queue.connection, self._planner.history, clock)

    # ---- typed commands ------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        try:
            return self._handle(request)
        except CredentialsInChat as exc:
            # The text is neither logged nor echoed; the audit trail gets it redacted.
            log.warning("command refused: credentials in chat user=%s channel=%s", request.user_id,
                        request.channel_id)
            self._record(request, "refused", "credentials in chat")
            return Reply(ReplyKind.CREDENTIALS, exc.warning(request.sent_through))
        except UsageError as exc:
            log.info("command invalid user=%s channel=%s", request.user_id, request.channel_id)
            self._record(request, "invalid", "")
            return Reply(ReplyKind.USAGE_ERROR, message_of(exc))
        except redis.RedisError:
            ref = secrets.token_hex(4)
            log.exception("command failed: Redis unavailable ref=%s user=%s", ref, request.user_id)
            return Reply(ReplyKind.ERROR, t("regops could not reach its job queue, so nothing was queued. "
                                            "Try again in a moment (reference {}).", code(ref)))
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("command failed unexpectedly ref=%s user=%s", ref, request.user_id)
            return Reply(ReplyKind.ERROR, t("Something went wrong on regops' side and nothing was queued "
                                            "(reference {}).", code(ref)))

    def _handle(self, request: Request) -> Reply:
        # Every command counts against the sender's commands a minute, before anything else is done with it.
        refusal = self._limits.check_rate(request.user_id, request.channel_id) if self._limits else None
        if refusal is not None:
            return self._limited(request, refusal)
        command = parse(request.text)
        log.info("command received user=%s channel=%s action=%s text=%r", request.user_id,
                 request.channel_id, command.action, command.text)
        if command.action == "help":
            allowed = self._policy.permitted_actions(request.user_id, request.channel_id)
            self._record(request, "answered", "help is open to everyone")
            return Reply(ReplyKind.HELP, help_text(command.topic, actions=allowed))
        if command.action == "whoami":
            identity = self._policy.whoami(request.user_id, request.channel_id)
            self._record(request, "answered", "whoami is open to everyone")
            return Reply(ReplyKind.ANSWER, explain.whoami_text(identity) + self._freezes.whoami_note())
        if command.action in ("status", "jobs", "cancel", "hosts"):
            return self._about_jobs(request, command)
        if command.action in FREEZE_COMMANDS or (command.action == "can-i" and command.subject_action == FREEZE):
            return self._freezes.handle(request, command)
        if command.action in REGISTRY_COMMANDS:
            return self._registry_command(request, command)
        if command.action in SUBSCRIPTION_COMMANDS or (command.action == "can-i"
                                                       and command.subject_action == SUBSCRIBE):
            if self._subscriptions is None:
                raise RuntimeError("the service was built without a subscription store")
            return self._subscriptions.handle(request, command)
        registry = self._registry(command)
        host = self._host(command)
        reference = self._reference(command, registry)
        if command.action == "can-i":
            action = command.subject_action or ""
            decision = self._decide(request, action, command, registry, host)
            self._record(request, "answered", decision.rule)
            if reference is None and command.image:  # `can-i tags IMAGE`: the repository, no tag
                reference = references.repository_name(registry.server, registry.namespace, command.image)
            target = code(reference) if reference else t("registry {}", code(registry.server))
            answer = explain.can_i_text(decision, action, target, command.source)
            if decision.allowed and reference is not None:
                answer += self._can_i_guards(action, command, registry, reference)
            return Reply(ReplyKind.ANSWER, answer)

        decision = self._decide(request, command.action, command, registry, host)
        if not decision.allowed:
            log.info("command denied user=%s action=%s target=%s rule=%r code=%s unresolved=%s",
                     request.user_id, command.action, reference or registry.server, decision.rule,
                     decision.code.value, ",".join(decision.unresolved_groups) or "-")
            self._record(request, "denied", decision.rule)
            return Reply(ReplyKind.DENIED, _denied(decision.reason))
        if command.action == "push" and reference is not None:
            guarded = self._guard(request, command, Write("push", registry.name, command.image or "",
                                                          command.tag or "", reference),
                                  t("push of {}", code(reference)), registry, decision)
            if isinstance(guarded, Reply):
                return guarded
            decision = guarded
        return self._submit(request, command, registry, host, reference, decision)

    def _about_jobs(self, request: Request, command: Command) -> Reply:
        user, channel = request.user_id, request.channel_id
        if command.action == "jobs":
            limit = command.limit or JOBS_DEFAULT_LIMIT
            records = self.jobs.recent(user, channel, limit=limit, mine=command.mine, image=command.image)
            self._record(request, "answered", "jobs: own jobs and jobs the roles allow")
            return Reply(ReplyKind.ANSWER, explain.jobs_text(records, mine=command.mine, image=command.image,
                                                             limit=limit))
        if command.action == "hosts":
            return self._hosts(request)
        job_id = command.job_id or ""
        if command.action == "cancel":
            return self._cancel(request, job_id)
        record = self.jobs.get(job_id)
        if record is None:
            self._record(request, "answered", "no such job", job_id)
            return Reply(ReplyKind.ANSWER, t("There is no job {} (or it is too old to show).", code(job_id)))
        decision = self.jobs.decide(user, "status", record, channel)
        if not decision.allowed:
            self._record(request, "denied", decision.rule, job_id)
            return Reply(ReplyKind.DENIED, _denied(decision.reason))
        self._record(request, "answered", decision.rule, job_id)
        return Reply(ReplyKind.ANSWER, explain.status_text(record, self.jobs.approval(job_id), self._clock()))

    def _hosts(self, request: Request) -> Reply:
        decisions = {host: self._policy.decide(request.user_id, "hosts", channel=request.channel_id, host=host)
                     for host in self._config.hosts}
        shown = [host for host, decision in decisions.items() if decision.allowed]
        if not shown:
            decision = decisions[self._config.default_host]
            self._record(request, "denied", decision.rule)
            return Reply(ReplyKind.DENIED, _denied(decision.reason))
        self._record(request, "answered", decisions[shown[0]].rule)
        # The registry queue is listed last: its workers serve promote, delete, rollback and the queries.
        return Reply(ReplyKind.ANSWER, explain.hosts_text(self.jobs.hosts([*shown, REGISTRY_QUEUE])))

    def _cancel(self, request: Request, job_id: str) -> Reply:
        result = self.jobs.cancel(job_id, request.user_id, request.channel_id)
        if result.outcome is CancelOutcome.REFUSED:
            self._record(request, "denied", result.rule, job_id)
            return Reply(ReplyKind.DENIED, _denied(result.message))
        cancelled = result.outcome is CancelOutcome.CANCELLED
        self._record(request, "allowed" if cancelled else "answered", result.rule or result.outcome.value, job_id)
        return Reply(ReplyKind.ANSWER, result.message, shown_in_message=cancelled)

    # ---- button clicks -------------------------------------------------------------------

    def click(self, click: Click) -> Reply:
        """A button pressed on a job's message, decided by the same rules as typed commands.

        A cancel click is the ``cancel`` command (same checks, same audit entry); approve and
        reject are decided (and audited) by the approvals.  Anything the job's message does not
        show is told to the clicker alone, as a notice the relay delivers.
        """
        try:
            reply = self._click(click)
            if not reply.shown_in_message:
                self._approvals.notice(click.job_id, click.user_id, click.channel_id or "", reply.text)
            return reply
        except redis.RedisError:
            log.exception("click %s job=%s user=%s: Redis unavailable; nothing changed", click.action.value,
                          click.job_id, click.user_id)
            return Reply(ReplyKind.ERROR, t("regops could not reach Redis; nothing changed. Try again."))

    def _click(self, click: Click) -> Reply:
        if click.action is ClickAction.CANCEL:
            request = Request(user_id=click.user_id, text=f"cancel {click.job_id}", channel_id=click.channel_id,
                              frontend=click.frontend)
            reply = self._cancel(request, click.job_id)
            log.info("cancel click job=%s user=%s kind=%s", click.job_id, click.user_id, reply.kind.value)
            return reply
        approve = click.action is ClickAction.APPROVE
        decide = self._approvals.approve if approve else self._approvals.reject
        result = decide(click.job_id, click.user_id, click.channel_id)
        log.info("approval click job=%s user=%s approve=%s outcome=%s rule=%r", click.job_id, click.user_id,
                 approve, result.outcome.value, result.rule)
        kind = ReplyKind.DENIED if result.outcome is Outcome.REFUSED else ReplyKind.ANSWER
        text = _denied(result.message) if kind is ReplyKind.DENIED else result.message
        return Reply(kind, text, shown_in_message=result.outcome in _QUIET_APPROVAL_OUTCOMES)

    # ---- queueing ------------------------------------------------------------------------

    def _decide(self, request: Request, action: str, command: Command, registry: RegistryConfig,
                host: str) -> Decision:
        # Registry actions run on no Docker host: a role's `hosts` globs do not apply to them.
        return self._policy.decide(request.user_id, action, command.image, command.tag,
                                   channel=request.channel_id, registry=registry.name,
                                   host=host if action in HOST_ACTIONS else None, source=command.source)

    def _registry_command(self, request: Request, command: Command) -> Reply:
        """tags, inspect, history, promote, delete, rollback: planned against the config, policy and history."""
        planner = self._planner
        if command.action == "history":
            registry = planner.registry(command.registry)
            decision = planner.decide(request.user_id, request.channel_id, "history", command.image, command.tag,
                                      registry)
            if not decision.allowed:
                self._record(request, "denied", decision.rule)
                return Reply(ReplyKind.DENIED, _denied(decision.reason))
            reference = self._reference(command, registry) or ""
            self._record(request, "answered", decision.rule)
            return Reply(ReplyKind.ANSWER, registry_views.history_text(reference, planner.history(reference)))
        plan = planner.plan(request.user_id, request.channel_id, command)
        if isinstance(plan, PlanRefusal):
            if plan.decision is not None:
                log.info("command denied user=%s action=%s rule=%r", request.user_id, command.action, plan.rule)
                self._record(request, "denied", plan.rule)
                return Reply(ReplyKind.DENIED, _denied(plan.text))
            self._record(request, "answered", plan.rule)
            return Reply(ReplyKind.ANSWER, plan.text)
        decision = plan.decision
        if plan.action in REGISTRY_ACTIONS:
            guarded = self._guard(request, command, self._write_of(plan, command), plan.what, plan.registry, decision)
            if isinstance(guarded, Reply):
                return guarded
            decision = guarded
        return self._submit(request, command, plan.registry, REGISTRY_QUEUE, plan.reference, decision, plan)

    def _write_of(self, plan: Plan, command: Command) -> Write:
        """What a planned promote, delete or rollback would write, as the guard rails ask it."""
        digest = plan.spec.get("digest")
        if plan.action == "promote" and digest is None and command.digest:
            digest = command.digest  # promote IMAGE @DIGEST TO
        if plan.action == "promote" and digest is None and command.tag and plan.source:
            digest = current_digest(self._planner.history(plan.source))  # what FROM holds, as far as regops knows
        return Write(plan.action, plan.registry.name, plan.image, plan.tag or "", plan.reference,
                     digest=str(digest) if digest else None,
                     source_registry=str(plan.spec.get("source_registry", plan.registry.name)),
                     source_image=command.image, source_tag=command.tag)

    def _guard(self, request: Request, command: Command, write: Write, what: Text, registry: RegistryConfig,
               decision: Decision) -> Reply | Decision:
        """The guard rails' word on an allowed write: the refusal's reply, or the decision to go on with
        (``decision`` itself, or with ``--override`` past a freeze or a promotion path, a break-glass one)."""
        refusals = self._guards.every(write) if command.override is not None else \
            [refusal for refusal in (self._guards.check(write),) if refusal is not None]
        if not refusals:
            return decision
        if command.override is None:
            return self._guarded(request, refusals[0], what)
        immutable = next((refusal for refusal in refusals if refusal.rail == IMMUTABLE_RAIL), None)
        if immutable is not None:
            return self._guarded(request, immutable, what, t(" An immutable tag is never overridden."))
        return self._break_glass(request, command.override, refusals, what, registry, decision)

    def _break_glass(self, request: Request, reason: str, refusals: list[GuardRefusal], what: Text,
                     registry: RegistryConfig, decision: Decision) -> Reply | Decision:
        """An override: the requester's roles must allow ``freeze``; a second person whose roles do must approve."""
        rules = ", ".join(refusal.rule for refusal in refusals)
        may = self._policy.decide(request.user_id, FREEZE, channel=request.channel_id, registry=registry.name)
        if not may.allowed:
            log.info("override refused user=%s rules=%r: %s", request.user_id, rules, may.rule)
            self._record(request, "denied", f"override of {rules} needs {FREEZE}: {may.rule}")
            return Reply(ReplyKind.DENIED, _denied(t(
                "The {} is refused: {}. An override ({}) needs the {} action, and {}. Nothing was queued.", what,
                refusals[0].text, code("--override"), code(FREEZE), may.reason)))
        approvers = tuple(name for name, role in self._config.access.roles.items()
                          if matches_any(FREEZE, role.actions))
        base = decision.approval
        rule = ApprovalRule(index=-1, approvers=approvers, required=base.required if base is not None else 1,
                            expires_in=base.expires_in if base is not None else OVERRIDE_EXPIRES_SECONDS)
        return replace(decision, rule=f"break-glass override of {rules} ({may.rule})", approval=rule,
                       reason=t("break-glass override of {}: {}; a second person whose role allows {} must approve "
                                "it, not you", plain(rules), user_input(reason), code(FREEZE)))

    def _guarded(self, request: Request, refusal: GuardRefusal, what: Text, more: Text | None = None) -> Reply:
        """Refused by a guard rail at the acknowledgement: nothing queued; audited with the rule, counted by rail."""
        log.info("command refused by guard rail user=%s rail=%s rule=%r", request.user_id, refusal.rail,
                 refusal.rule)
        pipe = self._queue.connection.pipeline()
        self._record(request, "denied", refusal.rule, pipeline=pipe, outcome=f"{refusal.rail}: {refusal.text}")
        if self._metrics is not None:
            self._metrics.guarded(refusal.rail, pipeline=pipe)
        pipe.execute()
        return Reply(ReplyKind.DENIED, _denied(t("The {} is refused: {}.{} Nothing was queued.", what, refusal.text,
                                                 more or Text())))

    def _can_i_guards(self, action: str, command: Command, registry: RegistryConfig, reference: str) -> Text:
        """What the guard rails say of an allowed ``can-i`` for a write: the rail that decides, if one does."""
        if action not in ("push", *REGISTRY_ACTIONS) or not command.image or not command.tag:
            return Text()
        write = Write(action, registry.name, command.image, command.tag, reference)
        refusal = self._guards.freeze(write) or self._guards.immutable(write)
        if refusal is None and action == "push":
            refusal = self._guards.path(write)
        if refusal is not None:
            return t(" But right now the guard rails refuse it: {} (rule {}).", refusal.text, code(refusal.rule))
        path = self._guards.path(Write(action, registry.name, command.image, command.tag, reference,
                                       source_registry=registry.name, source_image=command.image))
        if action == "promote" and path is not None:
            return t(" Only from the stage before it: {} (rule {}).", path.text, code(path.rule))
        rule = self._config.guards.immutable_rule(registry.name, command.image, command.tag)
        if rule is not None:
            return t(" Note: the tag is immutable once it exists (rule {}): regops never moves it to another digest.",
                     code(rule.name))
        return Text()

    def _submit(self, request: Request, command: Command, registry: RegistryConfig, host: str,
                reference: str | None, decision: Decision, plan: Plan | None = None) -> Reply:
        job_id = self._job_ids()
        source = command.source if plan is None else plan.source
        if command.action == "push" and source is None:
            source = f"{command.image}:{command.tag}"
        # A break-glass override travels in the spec, so that the worker's freeze and path checks let it pass.
        override = command.override if decision.approval is not None and decision.approval.index < 0 else None
        spec = JobSpec(job_id=job_id, action=command.action, registry=registry.name,
                       server=registry.server, reference=reference, source=source,
                       requester=request.user_id, override=override, **(plan.spec if plan is not None else {}))
        extra = {"server": registry.server}
        if plan is not None:
            extra.update(image=plan.image, tag=plan.tag or "")  # what permissions on the job are decided on
            if plan.spec.get("digest") and plan.action == "rollback":
                extra["to"] = str(plan.spec["digest"])  # where a rollback points the tag, for its message
        elif command.image and command.tag:
            extra.update(image=command.image, tag=command.tag)
        origin = Origin(frontend=request.frontend, user=request.user_id, channel=request.channel_id,
                        response_url=request.response_url)
        # One round trip before the transaction: claim the request's idempotency key and read
        # which workers the host has, whose heartbeats then ride along in the transaction.
        first = self._queue.connection.pipeline(transaction=False)
        key = idempotency_key(request.idempotency_key) if request.idempotency_key else None
        if key is not None:
            first.set(key, job_id, nx=True, ex=IDEMPOTENCY_TTL_SECONDS)
            first.get(key)
        # The open-jobs check rides along, taking this job's slot if there is one (bot/core/limits.py).
        # A query is no open job: it counts against the commands a minute only.
        reservation = None if self._limits is None or command.action in QUERY_ACTIONS else self._limits.reserve(
            first, user=request.user_id, channel=request.channel_id, host=host, job_id=job_id,
            idempotency_key=key, position=len(first))
        asks_previous = reference is not None and decision.approval is None and command.action in LOCKED_ACTIONS
        if asks_previous:
            self._queue.ask_previous_job(first, reference or "")
        first.smembers(rq_workers_key(host))
        answers = first.execute()
        if key is not None and not answers[0]:
            return self._duplicate(request, as_str(answers[1]))
        refusal = None if self._limits is None else self._limits.reserved(reservation, answers)
        if refusal is not None:
            if key is not None:
                self._forget(key)  # nothing was queued: a retry of this request must be free to queue it
            return self._limited(request, refusal)
        workers = sorted(as_str(member) for member in answers[-1])
        try:
            note = waiting_note(answers[-2]) if asks_previous else None
            record = JobRecord(job_id=job_id, action=command.action, registry=registry.name, host=host,
                               requester=request.user_id, reference=reference, source=source,
                               queued_at=self._clock(), message=note, extra=extra)
            return self._write(request, command, record, spec, origin, decision, workers,
                               plan.what if plan is not None else None)
        except Exception:
            if key is not None:
                self._forget(key)  # nothing was queued: a retry of this request must be free to queue it
            raise

    def _write(self, request: Request, command: Command, record: JobRecord, spec: JobSpec, origin: Origin,
               decision: Decision, workers: list[str], what: Text | None = None) -> Reply:
        job_id, host, reference = record.job_id, record.host, record.reference
        if what is None:
            what = t("{} of {}", command.action, code(reference)) if reference else \
                t("{} of registry {}", command.action, code(spec.server))
        timeout = self._config.timeouts.for_action(command.action)
        pipe = self._queue.pipeline()
        if decision.approval is not None:
            self._approvals.request(record, spec, origin, decision.approval, timeout, pipeline=pipe,
                                    rule_name=BREAK_GLASS_RULE if spec.override else None)
            self._record(request, "needs_approval", decision.rule, job_id, pipeline=pipe,
                         outcome=f"override: {spec.override}" if spec.override else "")
            if spec.override and self._config.notify_channel:
                notice = (f"Break-glass override asked by the requester: {what.plain()} (job {job_id}), past "
                          f"{decision.rule.removeprefix('break-glass override of ')}: {spec.override}. It runs "
                          f"once a second person whose role allows freeze approves it.")
                outbox.put(pipe, self._config.notify_channel, Announcement.notice(notice, self._clock(),
                                                                                   request.user_id), self._clock())
            pipe.execute()
            log.info("approval requested job=%s user=%s action=%s target=%s rule=%r", job_id,
                     request.user_id, command.action, reference or spec.server, decision.rule)
            return Reply(ReplyKind.APPROVAL, t(
                "{}The {} needs approval ({}). The request {} has been posted in this channel; the job is "
                "queued once it is approved.", icon(Icon.APPROVAL), what, decision.reason, code(job_id)), job=record)
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
        if command.action in QUERY_ACTIONS:
            return self._looking(record, what, live)
        log.info("job enqueued job=%s user=%s action=%s target=%s host=%s position=%s live_workers=%d rule=%r",
                 job_id, request.user_id, command.action, reference or spec.server, host, position, live,
                 decision.rule)
        if host == REGISTRY_QUEUE:
            text = t("{}Queued {} on the registry queue as job {}, position {} in the queue.", icon(Icon.QUEUED),
                     what, code(job_id), int(position))
        else:
            text = t("{}Queued {} on host {} as job {}, position {} in the queue for {}.", icon(Icon.QUEUED), what,
                     code(host), code(job_id), int(position), host)
        if record.message:
            text += t(" It is {}.", record.message)
        if not live:
            text += _no_worker(host)
        text += t(" Its progress and result will follow here; job {} can be cancelled with {}.", job_id,
                  typed(f"cancel {job_id}"))
        return Reply(ReplyKind.QUEUED, text, job=record)

    @staticmethod
    def _looking(record: JobRecord, what: Text, live: int) -> Reply:
        """A query is on the registry queue: the answer comes to the asker alone, from a registry worker."""
        log.info("query enqueued job=%s user=%s action=%s target=%s live_workers=%d", record.job_id,
                 record.requester, record.action, record.reference, live)
        text = t("{}Looking up the {} (job {}); the answer follows here, for you only.", icon(Icon.QUEUED), what,
                 code(record.job_id))
        if not live:
            text += _no_worker(REGISTRY_QUEUE)
        return Reply(ReplyKind.LOOKING, text, job=record)

    def _limited(self, request: Request, refusal: Refusal) -> Reply:
        """Refused by a limit: nothing queued or opened; audited (or, past a run's first refusal, counted)."""
        reply = Reply(ReplyKind.LIMITED, refusal.text)
        try:
            refuse_credentials(request.text)
        except CredentialsInChat as exc:
            # The secret crossed Slack whatever the limit says: the person must still be told to rotate it.
            reply = Reply(ReplyKind.CREDENTIALS, exc.warning(request.sent_through))
        pipe = self._queue.connection.pipeline(transaction=False)
        if refusal.audited:
            log.info("command limited user=%s channel=%s rule=%r", request.user_id, request.channel_id, refusal.rule)
            self._record(request, "limited", refusal.rule, pipeline=pipe)
        else:
            log.debug("command limited user=%s channel=%s limit=%s (not audited: same run of refusals)",
                      request.user_id, request.channel_id, refusal.limit)
        if self._metrics is not None:
            self._metrics.limited(refusal.limit, None if refusal.audited else _action_word(request.text),
                                  pipeline=pipe)
        pipe.execute()
        return reply

    def _duplicate(self, request: Request, job_id: str) -> Reply:
        log.info("command repeated user=%s job=%s: same request delivered again, nothing queued",
                 request.user_id, job_id)
        self._record(request, "answered", "repeated request", job_id)
        return Reply(ReplyKind.DUPLICATE, t("{}This request was already received: already queued as job {} ({}). "
                                            "Nothing new was queued.", icon(Icon.REPEAT), job_id, code(job_id)))

    def _forget(self, key: str) -> None:
        try:
            self._queue.connection.delete(key)
        except redis.RedisError:
            log.warning("could not release idempotency key %s; a retry of that request within %d s is refused",
                        key, IDEMPOTENCY_TTL_SECONDS)

    def _record(self, request: Request, decision: str, rule: str, job_id: str = "",
                pipeline: redis.client.Pipeline | None = None, outcome: str = "") -> None:
        # A command that was not understood keeps only its first few hundred characters, redacted.
        limit = AUDIT_TEXT_LIMIT if decision in ("invalid", "refused") else None
        entry = AuditEntry(at=self._clock(), user=request.user_id, channel=request.channel_id or "",
                           kind="command", command=audit_text(request.text, limit), decision=decision,
                           rule=rule, job_id=job_id, outcome=outcome)
        try:
            self._audit.record(entry, pipeline=pipeline)
            if self._metrics is not None:
                self._metrics.command(_action_word(readable_part(request.text)), decision, pipeline=pipeline)
        except redis.RedisError:
            if pipeline is not None:
                raise
            log.exception("audit: could not record a %s command of user %s", decision, request.user_id)

    def _registry(self, command: Command) -> RegistryConfig:
        name = command.registry or self._config.default_registry
        registry = self._config.registries.get(name)
        if registry is None:
            raise unknown_name("registry", name, self._config.registries, "--registry NAME",
                           self._config.default_registry)
        return registry

    def _host(self, command: Command) -> str:
        host = command.host or self._config.default_host
        if host not in self._config.hosts:
            raise unknown_name("Docker host", host, self._config.hosts, "--host NAME", self._config.default_host)
        return host

    @staticmethod
    def _reference(command: Command, registry: RegistryConfig) -> str | None:
        if command.image is None or command.tag is None:
            return None
        try:
            return references.full_reference(registry.server, registry.namespace, command.image, command.tag)
        except RegopsError as exc:
            raise CommandError(message_of(exc)) from exc

