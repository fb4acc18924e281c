"""Approval requests for protected targets: request, approve, reject, expire — atomically, in Redis.

A command that matches an approvals rule becomes a job record in state
``awaiting_approval`` plus an approval hash; it is not on any queue.  Approvers decide
through Slack buttons; ``required`` distinct approvals queue the job (same job id, so
the channel message that asked for approval goes on to show the job's progress), one
rejection or the expiry closes it.  Every transition is a WATCH/MULTI on the approval
hash, so two clicks, two relays or a click racing the expiry cannot both win, and a
late click on an old copy of the message changes nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

import redis

from bot.core.access import Decision, Policy
from bot.core.queueing import RECORD_TTL_SECONDS, JobQueue, Origin, remember
from bot.core.text import Kind, Text, t
from workers.kernel.audit import AuditEntry
from workers.kernel.config import ApprovalRule
from workers.kernel.jobs import JobEvent, JobRecord, JobSpec, JobState
from workers.kernel.keys import (
    AUDIT_STREAM,
    EVENTS_STREAM,
    EVENTS_STREAM_MAXLEN,
    PENDING_APPROVALS_KEY,
    approval_key,
    job_key,
    origin_key,
)
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

APPROVAL_EVENT = "approval"
NOTICE_EVENT = "notice"


class Outcome(StrEnum):
    RECORDED = "recorded"      # an approval counted, more needed
    APPROVED = "approved"      # the last approval needed: the job is queued
    REJECTED = "rejected"
    EXPIRED = "expired"
    REFUSED = "refused"        # this user may not decide; nothing changed
    CLOSED = "closed"          # already decided or expired; nothing changed
    DUPLICATE = "duplicate"    # this user already approved; nothing changed
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ApprovalView:
    """What the channel message shows about a request."""

    job_id: str
    state: str
    requester: str
    required: int
    approvers: tuple[str, ...]
    expires_at: float
    rule: str
    rule_index: int = 0
    channel: str = ""
    approved_by: tuple[str, ...] = ()
    rejected_by: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.state == JobState.AWAITING_APPROVAL


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    message: Text
    """User-safe sentence for the person who clicked (sent ephemerally)."""
    rule: str = ""


def read_view(connection: redis.Redis, job_id: str) -> ApprovalView | None:
    raw = connection.hgetall(approval_key(job_id))
    return _view(job_id, raw) if raw else None


def _view(job_id: str, raw: dict) -> ApprovalView:
    fields = {as_str(k): as_str(v) for k, v in raw.items()}
    return ApprovalView(
        job_id=job_id,
        state=fields.get("state", JobState.AWAITING_APPROVAL),
        requester=fields.get("requester", ""),
        required=int(fields.get("required", "1")),
        approvers=tuple(json.loads(fields.get("approvers", "[]"))),
        expires_at=float(fields.get("expires_at", "0")),
        rule=fields.get("rule", ""),
        rule_index=int(fields.get("rule_index", "0")),
        channel=fields.get("channel", ""),
        approved_by=tuple(json.loads(fields.get("approved_by", "[]"))),
        rejected_by=fields.get("rejected_by") or None,
    )


class Approvals:
    """Request and decide approvals. ``connection`` returns bytes (it shares transactions with rq)."""

    def __init__(self, connection: redis.Redis, queue: JobQueue, policy: Policy,
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = connection
        self._queue = queue
        self._policy = policy
        self._clock = clock

    # ---- asking --------------------------------------------------------------------------

    def request(self, record: JobRecord, spec: JobSpec, origin: Origin, rule: ApprovalRule, timeout: int,
                pipeline: redis.client.Pipeline, rule_name: str | None = None) -> float:
        """Add the request's writes to ``pipeline`` (in MULTI); returns when it expires.

        ``rule_name`` names a rule that is not one of ``access.approvals`` (a break-glass override's).
        """
        now = self._clock()
        expires_at = now + rule.expires_in
        awaiting = JobRecord(**{**record.__dict__, "state": JobState.AWAITING_APPROVAL})
        pipeline.hset(job_key(record.job_id), mapping=awaiting.to_fields())
        pipeline.expire(job_key(record.job_id), RECORD_TTL_SECONDS)
        pipeline.hset(origin_key(record.job_id), mapping=origin.to_fields())
        pipeline.expire(origin_key(record.job_id), RECORD_TTL_SECONDS)
        pipeline.hset(approval_key(record.job_id), mapping={
            "state": JobState.AWAITING_APPROVAL, "requester": record.requester, "channel": origin.channel or "",
            "required": str(rule.required), "approvers": json.dumps(list(rule.approvers)),
            "rule": rule_name or f"approvals[{rule.index}]", "rule_index": str(rule.index),
            "expires_at": str(expires_at),
            "spec": json.dumps(spec.to_dict()), "timeout": str(timeout), "approved_by": "[]",
        })
        pipeline.expire(approval_key(record.job_id), RECORD_TTL_SECONDS)
        pipeline.zadd(PENDING_APPROVALS_KEY, {record.job_id: expires_at})
        remember(pipeline, record.job_id, record.queued_at if record.queued_at is not None else now)
        self._event(pipeline, record.job_id, now)
        return expires_at

    # ---- deciding ------------------------------------------------------------------------

    def approve(self, job_id: str, user: str, channel: str | None) -> Result:
        return self._decide(job_id, user, channel, approve=True)

    def reject(self, job_id: str, user: str, channel: str | None) -> Result:
        return self._decide(job_id, user, channel, approve=False)

    def _decide(self, job_id: str, user: str, channel: str | None, *, approve: bool) -> Result:
        key = approval_key(job_id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.hgetall(key)
                    if not raw:
                        return Result(Outcome.UNKNOWN, t("That approval request no longer exists."))
                    view = _view(job_id, raw)
                    now = self._clock()
                    if not view.pending:
                        return Result(Outcome.CLOSED, t("That request is already {}; nothing changed.", view.state),
                                      view.rule)
                    if view.expires_at <= now:
                        pipe.multi()
                        self._close(pipe, job_id, JobState.EXPIRED, "", now)
                        pipe.execute()
                        self._audit_decision(view, "", "expired", now)
                        return Result(Outcome.EXPIRED, t("That request has expired; nothing was queued."), view.rule)
                    decision = self._may_decide(view, user, channel, approve)
                    if not decision.allowed:
                        self._audit_decision(view, user, "refused", now, decision.rule)
                        return Result(Outcome.REFUSED, decision.reason, decision.rule)
                    if approve and user in view.approved_by:
                        return Result(Outcome.DUPLICATE, t("You have already approved this request."), view.rule)
                    pipe.multi()
                    if not approve:
                        self._close(pipe, job_id, JobState.REJECTED, user, now)
                        outcome = Outcome.REJECTED
                    else:
                        approved_by = (*view.approved_by, user)
                        pipe.hset(key, "approved_by", json.dumps(list(approved_by)))
                        outcome = Outcome.RECORDED
                        if len(approved_by) >= view.required:
                            self._queue_approved(pipe, job_id, raw, approved_by, now)
                            outcome = Outcome.APPROVED
                        else:
                            self._event(pipe, job_id, now)
                    pipe.execute()
                except redis.WatchError:
                    continue
                self._audit_decision(view, user, "approved" if approve else "rejected", now, decision.rule)
                log.info("approval %s: %s by %s (%s)", job_id, outcome.value, user, decision.rule)
                return Result(outcome, _confirmation(outcome, view), decision.rule)

    def _may_decide(self, view: ApprovalView, user: str, channel: str | None, approve: bool) -> Decision:
        rule = ApprovalRule(index=view.rule_index, approvers=view.approvers, required=view.required)
        if not approve and user == view.requester:
            return Decision(True, "requester withdrew", t("you withdrew your own request"))
        decision = self._policy.may_approve(user, rule, requester=view.requester, channel=channel)
        if view.rule_index < 0:  # a break-glass override's: it goes by its stored name, not a place in approvals
            decision = replace(decision, rule=decision.rule.replace(rule.name, view.rule),
                               reason=_renamed(decision.reason, rule.name, view.rule))
        return decision

    def _queue_approved(self, pipe: redis.client.Pipeline, job_id: str, raw: dict,
                        approved_by: tuple[str, ...], now: float) -> None:
        fields = {as_str(k): as_str(v) for k, v in raw.items()}
        spec = JobSpec.from_dict(json.loads(fields["spec"]))
        record = JobRecord.from_fields({as_str(k): as_str(v) for k, v in self._redis.hgetall(job_key(job_id)).items()})
        extra = {**record.extra, "approved_by": ",".join(approved_by)}
        queued = JobRecord(**{**record.__dict__, "state": "queued", "queued_at": now, "extra": extra})
        origin = Origin.from_fields({as_str(k): as_str(v) for k, v in self._redis.hgetall(origin_key(job_id)).items()})
        pipe.hset(approval_key(job_id), mapping={"state": "approved", "decided_at": str(now)})
        pipe.zrem(PENDING_APPROVALS_KEY, job_id)
        self._queue.enqueue(queued, spec, origin, int(fields.get("timeout", "1800")), pipeline=pipe)

    def _close(self, pipe: redis.client.Pipeline, job_id: str, state: str, user: str, now: float) -> None:
        pipe.hset(approval_key(job_id), mapping={"state": state, "decided_at": str(now), "rejected_by": user})
        pipe.hset(job_key(job_id), mapping={"state": state, "finished_at": str(now)})
        pipe.zrem(PENDING_APPROVALS_KEY, job_id)
        self._event(pipe, job_id, now)

    def expire_due(self) -> list[str]:
        """Close every pending request whose time is up; returns their ids."""
        now = self._clock()
        expired = []
        for member in self._redis.zrangebyscore(PENDING_APPROVALS_KEY, "-inf", now, start=0, num=100):
            job_id = as_str(member)
            result = self._decide_expiry(job_id, now)
            if result:
                expired.append(job_id)
        return expired

    def _decide_expiry(self, job_id: str, now: float) -> bool:
        key = approval_key(job_id)
        with self._redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                raw = pipe.hgetall(key)
                if not raw or as_str(raw.get(b"state")) != JobState.AWAITING_APPROVAL:
                    pipe.multi()
                    pipe.zrem(PENDING_APPROVALS_KEY, job_id)
                    pipe.execute()
                    return False
                view = _view(job_id, raw)
                if view.expires_at > now:
                    return False
                pipe.multi()
                self._close(pipe, job_id, JobState.EXPIRED, "", now)
                pipe.execute()
            except redis.WatchError:
                return False
        self._audit_decision(view, "", "expired", now)
        log.info("approval %s: expired", job_id)
        return True

    # ---- side effects --------------------------------------------------------------------

    def notice(self, job_id: str, user: str, channel: str, text: Text) -> None:
        """Ask the relay to tell one person something ephemerally (Slack calls stay out of the ack)."""
        event = {"job_id": job_id, "type": NOTICE_EVENT, "at": str(self._clock()), "user": user,
                 "channel": channel, "message": text.to_json()}
        self._redis.xadd(EVENTS_STREAM, event, maxlen=EVENTS_STREAM_MAXLEN, approximate=True)

    def _event(self, pipe: redis.client.Pipeline, job_id: str, now: float) -> None:
        event = JobEvent(job_id=job_id, type=APPROVAL_EVENT, at=now)
        pipe.xadd(EVENTS_STREAM, event.to_fields(), maxlen=EVENTS_STREAM_MAXLEN, approximate=True)

    def _audit_decision(self, view: ApprovalView, user: str, decision: str, now: float, rule: str = "") -> None:
        entry = AuditEntry(at=now, user=user, channel=view.channel, kind="approval", command="", decision=decision,
                           rule=rule or view.rule, job_id=view.job_id, outcome="")
        self._redis.xadd(AUDIT_STREAM, entry.to_fields())


def _renamed(text: Text, old: str, new: str) -> Text:
    """``text`` with ``old`` written ``new`` in its plain and input pieces."""
    return Text(tuple(replace(piece, value=piece.value.replace(old, new)) if piece.kind in (Kind.PLAIN, Kind.INPUT)
                      else piece for piece in text.pieces))


def _confirmation(outcome: Outcome, view: ApprovalView) -> Text:
    if outcome is Outcome.APPROVED:
        return t("Approved: the job is queued.")
    if outcome is Outcome.RECORDED:
        return t("Approval recorded ({} of {}).", len(view.approved_by) + 1, view.required)
    if outcome is Outcome.REJECTED:
        return t("Rejected: the request is closed and nothing was queued.")
    return t("{}", outcome.value)
