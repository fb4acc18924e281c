"""User-facing answers: ``whoami``, ``can-i``, and ``status``, ``jobs``, ``hosts``, as structured text.

Only wording: the policy decides, this module says it in words.  The texts name roles,
grants, channels, groups and approvals rules, never a secret (there is none in an
:class:`~bot.core.access.Identity` or a :class:`~bot.core.access.Decision`).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.access import (
    OPEN_ACTIONS,
    Decision,
    DecisionCode,
    GrantMatch,
    Identity,
    channels_text,
    describe_approvers,
    verb,
)
from bot.core.approvals import ApprovalView
from bot.core.grammar.spec import SPECS
from bot.core.jobs import HostView
from bot.core.outcomes import duration_text, failure_text, outcome_text
from bot.core.text import Text, bold, channel, code, codes, join, lines, t, user
from workers.kernel.actions import REGISTRY_QUEUE
from workers.kernel.config import EVERYONE, ApprovalRule, Role
from workers.kernel.config.model import ANY_NAME
from workers.kernel.jobs import JobRecord, JobState
from workers.kernel.times import format_duration, iso_time


def _how(match: GrantMatch) -> Text:
    if match.matched_by == "group" and match.group:
        return t("as a member of user group {}", code(match.group))
    if match.matched_by == "everyone":
        return t("to everyone ({})", code(EVERYONE))
    return t("to you by user ID")


def _where(match: GrantMatch) -> Text:
    return t("valid in {}", channels_text(match.channels)) if match.channels else t("valid in every channel")


def _scope(role: Role) -> Text:
    """What the role allows, leaving out the parts that allow everything."""
    parts = [t("actions {}", codes(role.actions))]
    for noun, globs, everything in (
        ("images", role.images, (ANY_NAME,)),
        ("tags", role.tags, ("*",)),
        ("registries", role.registries, ("*",)),
        ("hosts", role.hosts, ("*",)),
        ("local images (`--source`, tag's SOURCE)", role.sources, (ANY_NAME,)),
    ):
        # Tags and names from the config have no `/`: for them `*` is everything.
        if tuple(globs) not in (everything, (ANY_NAME,)):
            parts.append(t("{} {}", noun, codes(globs)))
    return join("; ", parts)


def _approval_terms(rule: ApprovalRule) -> Text:
    noun = "approval" if rule.required == 1 else "distinct approvals"
    return t("{} {} from {}; a request expires after {} ({})", rule.required, noun,
             describe_approvers(rule), format_duration(rule.expires_in), rule.name)


def whoami_text(identity: Identity) -> Text:
    """Your roles here, the grants that gave them, where they apply, what you may do."""
    here = t("in {}", channel(identity.channel)) if identity.channel else t("here")
    out = [t("*Your access* ({} {})", user(identity.user_id), here)]
    if identity.grants:
        out.append(t("Roles {}: {}", here, join(", ", (bold(name) for name in identity.roles))))
        for match in identity.grants:
            out.append(t("• {} from grants[{}], given {}, {}: {}", bold(match.role.name), match.index, _how(match),
                         _where(match), _scope(match.role)))
    else:
        out.append(t("You have no role {}: no grant applies to you in this channel.", here))
    if identity.elsewhere:
        out.append(t("Grants that name you but are not valid in this channel:"))
        for match in identity.elsewhere:
            out.append(t("• {} from grants[{}], given {}, valid only in {}", bold(match.role.name), match.index,
                         _how(match), channels_text(match.channels)))
    if identity.unresolved_groups:
        out.append(t("User groups that could not be resolved right now: {}. Their grants do not apply until they "
                     "can be (fail closed); try again in a few minutes.", codes(identity.unresolved_groups)))
    # Actions a role may name before the grammar has their command are not worth offering yet.
    jobs = [action for action in identity.actions if action in SPECS and action not in OPEN_ACTIONS]
    everyone = [action for action in identity.actions if action in OPEN_ACTIONS]
    if jobs:
        out.append(t("You may run {}: {}, and {} (open to everyone).", here, codes(jobs), codes(everyone)))
    else:
        out.append(t("You may run only {} (open to everyone). Ask a regops admin for access.", codes(everyone)))
    for rule in identity.approvals:
        out.append(t("Needs approval: {} of images {} with tags {}: {}. You cannot approve your own request.",
                     codes(rule.actions), codes(rule.images), codes(rule.tags), _approval_terms(rule)))
    return lines(out)


def can_i_text(decision: Decision, action: str, target: Text | str, source: str | None = None) -> Text:
    """``Yes``/``No`` for ``action`` on ``target`` (a reference, or the registry for login), with the rule.

    A ``str`` target is a name, shown as code; ``source`` is the ``--source`` asked about, if any.
    """
    if isinstance(target, str):
        target = code(target)
    if source:
        target = t("{} from {}", target, code(source))
    if decision.code is DecisionCode.OPEN:
        return t("Yes: {} is open to everyone.", code(action))
    if not decision.allowed:
        return t("No: {}. Deciding rule: {}.", decision.reason, code(decision.rule))
    approval = decision.approval
    said = verb(action)
    if approval is None:
        answer = t("Yes: you may {} {}, no approval needed. Deciding rule: {}.", said, target,
                   code(decision.rule))
    else:
        answer = t("Yes, with approval: you may {} {} (deciding rule: {}), but it runs only after {}. "
                   "You cannot approve your own request.", said, target, code(decision.rule),
                   _approval_terms(approval))
    if decision.sources and action in ("push", "tag") and not source:
        answer += t(" The local image it starts from (`--source`, tag's SOURCE) must match {}; ask with "
                    "{} to check one.", codes(decision.sources), code("--source REF"))
    return answer


# ---- jobs and hosts ------------------------------------------------------------------------


def _when(at: float | None) -> str:
    return iso_time(at) if at is not None else "—"


def _people(ids: Sequence[str]) -> Text:
    return join(", ", (user(person) for person in ids))


def _timings(record: JobRecord, now: float) -> Text:
    timings = [t("queued {}", _when(record.queued_at))]
    if record.started_at is not None:
        timings.append(t("started {}", _when(record.started_at)))
    if record.finished_at is not None:
        timings.append(t("finished {}", _when(record.finished_at)))
    if record.duration is not None:
        timings.append(t("took {}", duration_text(record.duration)))
    elif record.started_at is not None and record.finished_at is None:
        timings.append(t("running for {}", duration_text(now - record.started_at)))
    elif record.queued_at is not None and record.finished_at is None:
        timings.append(t("waiting for {}", duration_text(now - record.queued_at)))
    return t("• {}", join(", ", timings))


def _approval_line(record: JobRecord, approval: ApprovalView | None) -> Text | None:
    if approval is not None:
        parts = [t("approval {} ({}, {} needed)", approval.state, approval.rule, approval.required)]
        if approval.approved_by:
            parts.append(t("approved by {}", _people(approval.approved_by)))
        if approval.rejected_by:
            parts.append(t("rejected by {}", user(approval.rejected_by)))
        return t("• {}", join("; ", parts))
    if record.extra.get("approved_by"):
        return t("• approved by {}", _people(record.extra["approved_by"].split(",")))
    return None


def status_text(record: JobRecord, approval: ApprovalView | None, now: float) -> Text:
    """``status JOB``: state, requester, reference, host, timings, progress, outcome and approval."""
    out = [t("*Job {}* — {}", code(record.job_id), outcome_text(record)),
           t("• requested by {} · host {} · registry {}", user(record.requester), code(record.host),
             code(record.registry))]
    if record.reference:
        source = t(" from {}", code(record.source)) if record.source else Text()
        out.append(t("• reference {}{}", code(record.reference), source))
    out.append(_timings(record, now))
    if record.progress is not None and record.state == JobState.RUNNING:
        out.append(t("• progress {}%", record.progress))
    if record.state == JobState.SUCCEEDED:
        digest = t(", digest {}", code(record.digest)) if record.digest else Text()
        out.append(t("• outcome: succeeded{}", digest))
    elif record.state == JobState.FAILED:
        out.append(t("• outcome: failed — {}", failure_text(record)))
    elif record.state == JobState.CANCELLED:
        by = record.extra.get("cancelled_by")
        out.append(t("• outcome: cancelled{}", t(" by {}", user(by)) if by else Text()))
    approval_line = _approval_line(record, approval)
    if approval_line is not None:
        out.append(approval_line)
    return lines(out)


def jobs_text(records: Sequence[JobRecord], *, mine: bool, image: str | None, limit: int) -> Text:
    """``jobs``: one line a job, newest first."""
    scope = "your" if mine else "recent"
    about = t(" of {}", code(image)) if image else Text()
    if not records:
        return t("No {} jobs{} to show.", scope, about)
    out = [t("*{} {} job(s){}*, newest first (at most {}):", len(records), scope, about, limit)]
    for record in records:
        out.append(t("• {} {} — {}, host {}, queued {}", code(record.job_id), outcome_text(record),
                     user(record.requester), code(record.host), _when(record.queued_at)))
    return lines(out)


def hosts_text(hosts: Sequence[HostView]) -> Text:
    """``hosts``: each Docker host with its live workers, queue length and running job; the registry queue last."""
    docker_hosts = [host for host in hosts if host.name != REGISTRY_QUEUE]
    if not docker_hosts:
        return t("No Docker host you may see is configured.")
    out = [t("*Docker hosts*"), *(t("• {}: {}", code(host.name), _queue_line(host)) for host in docker_hosts)]
    for host in hosts:
        if host.name == REGISTRY_QUEUE:
            out.append(t("*Registry queue* (promote, delete, rollback, tags, inspect): {}", _queue_line(host)))
    return lines(out)


def _queue_line(host: HostView) -> Text:
    workers = (t("{} live worker(s) ({})", len(host.live_workers), codes(host.live_workers))
               if host.live_workers else t("no live worker"))
    running = (t("running {}", join(", ", (t("{} ({})", code(r.job_id), _target_of(r)) for r in host.running)))
               if host.running else t("nothing running"))
    return t("{}; {} job(s) queued; {}", workers, host.queued, running)


def _target_of(record: JobRecord) -> Text:
    return t("{} of {}", record.action, code(record.reference)) if record.reference else t("{}", record.action)
