"""How much one person may ask of regops: commands a minute, and open jobs per person and per host.

The ``limits:`` section of the config sets them (:class:`workers.kernel.config.Limits`).  Each
is decided in Redis by one Lua script, so every ``serve`` process and replica shares one count,
and two commands racing for the last slot cannot both get it.

* **Commands a minute** (``commands_per_minute``): a sliding window, a sorted set per person of
  the commands taken in the last 60 s.  Every command that reaches the service counts, before it
  is parsed: an invalid one, ``help`` and a denied one cost an answer and an audit entry just
  like the others, and a flood is a flood whatever it says (button clicks are not commands and
  do not count).  A refused command is not added, so "try again in 12 s" is true when it is
  said.  Only the first refusal of a run (until a slot frees) gets an audit entry; the others
  are counted in the metrics: a flood must not grow the audit trail at the flooder's pace.
* **Open jobs** (``queued_per_user``, ``queued_per_host``): a job counts against its requester and
  its Docker host from the moment it is asked for until its record says it ended (succeeded,
  failed, cancelled, rejected, expired), whatever ended it: its worker, a cancel, an approver,
  the approval's expiry, the watchdog.  Job ids are kept in a sorted set per person and per host,
  added by the script that checks the cap, so the check and the taking of the slot are one step.
  The count is derived from the job records, so nothing has to be removed where a job ends and
  nothing drifts: below the cap the set's size is enough (it can only be too high), at the cap
  the script reads each member's record and drops the ended ones (and ids whose record never
  appeared, a minute after they were added), then counts again.
* **Exempt** (``exempt_roles``): a person who has one of those roles in the command's channel,
  as the policy decides, is never refused.  The policy is asked only when a limit would refuse,
  so nobody else pays for it.

The open-jobs script runs inside the command's first pipeline (``Service._submit``), beside the
idempotency claim and the read of the host's workers: no round trip of its own.  It is sent
with EVAL, not EVALSHA, as Redis' documentation advises inside a pipeline (a NOSCRIPT error
there could not be retried without replaying the pipeline); the rate script runs on its own
and goes through redis-py's ``Script`` (EVALSHA, falling back to EVAL once per server).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from bot.core.access import Policy
from bot.core.text import Icon, Text, code, command, icon, t
from workers.kernel.config import Limits
from workers.kernel.jobs import JobState
from workers.kernel.keys import (
    JOB_KEY_PREFIX,
    host_jobs_key,
    rate_refused_key,
    rate_window_key,
    user_jobs_key,
)
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
"""The rate limit's window: ``commands_per_minute`` is per sliding minute."""
RESERVATION_GRACE_SECONDS = 60
"""A job id whose record has not appeared this long after its slot was taken is dropped (its command failed)."""
SETS_TTL_SECONDS = 7 * 24 * 3600
"""An open-jobs set of a person or host that gets no new job for this long expires (as job records do)."""
OPEN_STATES = (JobState.AWAITING_APPROVAL.value, JobState.QUEUED.value, JobState.RUNNING.value)
"""The job states that count as open."""

RATE = "commands_per_minute"
PER_USER = "queued_per_user"
PER_HOST = "queued_per_host"
LIMIT_NAMES = (RATE, PER_USER, PER_HOST)
"""The limits, by their key under ``limits:`` (the ``limit`` label of the metric)."""

# KEYS: window, refusals (hash: until, refused).  ARGV: now (s), window (s), limit, member.
# Returns {taken (1/0), commands in the window, seconds until a slot frees (string), refusals in this run}.
_RATE_SCRIPT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return {1, count + 1, '0', 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
if wait < 0.001 then wait = 0.001 end
-- A run of refusals lasts until a slot frees; only its first refusal is audited.
local refused = 1
if now < tonumber(redis.call('HGET', KEYS[2], 'until') or '0') then
  refused = redis.call('HINCRBY', KEYS[2], 'refused', 1)
else
  redis.call('HSET', KEYS[2], 'until', tostring(now + wait), 'refused', 1)
end
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
return {0, count, tostring(wait), refused}
"""

# KEYS: the person's set, the host's set[, the request's idempotency key].
# ARGV: job id, now, person cap, host cap (-1: that limit is off, its set is not kept), force (1: exempt),
#       grace (s), ttl (s), job key prefix, open states...
# Returns {status, the person's open jobs, the host's} (-1 where not kept); status is
# ok (slot taken), user or host (refused by that cap), duplicate (a repeat of a request: nothing done).
_OPEN_JOBS_SCRIPT = """
local job, now = ARGV[1], tonumber(ARGV[2])
if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= job then
  return {'duplicate', -1, -1}
end
local grace, prefix = tonumber(ARGV[6]), ARGV[8]
local open = {}
for i = 9, #ARGV do open[ARGV[i]] = true end
local function count(key, cap)
  local n = redis.call('ZCARD', key)
  if n < cap then return n end
  local members = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local state = redis.call('HGET', prefix .. members[i], 'state')
    if state then
      if not open[state] then redis.call('ZREM', key, members[i]) end
    elseif now - tonumber(members[i + 1]) > grace then
      redis.call('ZREM', key, members[i])
    end
  end
  return redis.call('ZCARD', key)
end
local caps = {tonumber(ARGV[3]), tonumber(ARGV[4])}
local counts = {-1, -1}
for i = 1, 2 do
  if caps[i] >= 0 then counts[i] = count(KEYS[i], caps[i]) end
end
if ARGV[5] ~= '1' then
  if caps[1] >= 0 and counts[1] >= caps[1] then return {'user', counts[1], counts[2]} end
  if caps[2] >= 0 and counts[2] >= caps[2] then return {'host', counts[1], counts[2]} end
end
for i = 1, 2 do
  if caps[i] >= 0 then
    redis.call('ZADD', KEYS[i], now, job)
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[7]))
  end
end
return {'ok', counts[1], counts[2]}
"""


@dataclass(frozen=True)
class Refusal:
    """A command a limit refused: which limit, the audit rule, the answer, and whether to audit it."""

    limit: str
    """The limit's key under ``limits:`` (:data:`LIMIT_NAMES`)."""
    rule: str
    """For the audit trail and logs: ``limits.queued_per_user 20``."""
    text: Text
    """What the person is told: what was wrong and what would be right."""
    audited: bool = True
    """False for the second and later refusals of a run by the rate limit: counted, not audited."""


@dataclass(frozen=True)
class Reservation:
    """Where the open-jobs check of one command sits in its pipeline, and what it is about."""

    index: int
    user: str
    channel: str | None
    host: str
    job_id: str
    idempotency_key: str | None


def _noun(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


class Limiter:
    """Decides the limits of :class:`workers.kernel.config.Limits` in Redis (bytes or text connection)."""

    def __init__(self, connection: redis.Redis, limits: Limits, policy: Policy,
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = connection
        self._limits = limits
        self._policy = policy
        self._clock = clock
        self._rate = connection.register_script(_RATE_SCRIPT)

    @property
    def limits(self) -> Limits:
        return self._limits

    def exempt(self, user: str, channel: str | None) -> bool:
        """Whether ``user`` has one of the exempt roles in ``channel``."""
        if not self._limits.exempt_roles:
            return False
        roles = self._policy.whoami(user, channel).roles
        return any(role in self._limits.exempt_roles for role in roles)

    # ---- commands a minute -----------------------------------------------------------------

    def check_rate(self, user: str, channel: str | None) -> Refusal | None:
        """Count one command of ``user``; a Refusal when the minute's commands are used up. One round trip."""
        limit = self._limits.commands_per_minute
        if limit is None:
            return None
        now = self._clock()
        taken, count, wait, refused = self._rate(
            keys=[rate_window_key(user), rate_refused_key(user)],
            args=[repr(now), WINDOW_SECONDS, limit, f"{now!r}:{secrets.token_hex(4)}"],
        )
        if int(taken) or self.exempt(user, channel):
            return None
        seconds = max(1, math.ceil(float(as_str(wait))))
        count = int(count)
        text = t("{}You sent {} {} in the last minute, the most regops takes from one person ({} is {}); this one "
                 "was not run. Try again in {} s.", icon(Icon.WARNING), count, _noun(count, "command", "commands"),
                 code("limits.commands_per_minute"), limit, seconds)
        first = int(refused) == 1
        rule = f"limits.commands_per_minute {limit}"
        if first:
            rule += f"; further refusals in the next {seconds} s are counted in the metrics, not audited"
        return Refusal(RATE, rule, text, audited=first)

    # ---- open jobs ---------------------------------------------------------------------------

    def reserve(self, pipe: redis.client.Pipeline, *, user: str, channel: str | None, host: str, job_id: str,
                idempotency_key: str | None, position: int) -> Reservation | None:
        """Add the open-jobs check (taking the slot if it passes) to ``pipe``, as its command ``position``.

        With ``idempotency_key`` (claimed earlier in the same pipeline) a repeat of the request
        takes no slot.  None when both caps are off.
        """
        if self._limits.queued_per_user is None and self._limits.queued_per_host is None:
            return None
        self._open_jobs(pipe, user, host, job_id, idempotency_key, force=False)
        return Reservation(position, user, channel, host, job_id, idempotency_key)

    def reserved(self, reservation: Reservation | None, answers: Sequence[Any]) -> Refusal | None:
        """The outcome of :meth:`reserve` from the pipeline's answers: None when the job may be written."""
        if reservation is None:
            return None
        status, users, hosts = answers[reservation.index]
        status = as_str(status)
        if status in ("ok", "duplicate"):
            return None
        if self.exempt(reservation.user, reservation.channel):
            # Exempt: the slot is taken all the same, so the job counts for the host and the person.
            self._open_jobs(self._redis, reservation.user, reservation.host, reservation.job_id,
                            reservation.idempotency_key, force=True)
            return None
        if status == "user":
            return self._per_user(int(users))
        return self._per_host(reservation.host, int(hosts))

    def _open_jobs(self, target: redis.Redis | redis.client.Pipeline, user: str, host: str, job_id: str,
                   idempotency_key: str | None, *, force: bool) -> Any:
        limits = self._limits
        keys = [user_jobs_key(user), host_jobs_key(host)]
        if idempotency_key is not None:
            keys.append(idempotency_key)
        args = [job_id, repr(self._clock()),
                -1 if limits.queued_per_user is None else limits.queued_per_user,
                -1 if limits.queued_per_host is None else limits.queued_per_host,
                1 if force else 0, RESERVATION_GRACE_SECONDS, SETS_TTL_SECONDS, JOB_KEY_PREFIX, *OPEN_STATES]
        return target.eval(_OPEN_JOBS_SCRIPT, len(keys), *keys, *args)

    def _per_user(self, count: int) -> Refusal:
        limit = self._limits.queued_per_user or 0
        text = t("{}You have {} {} queued, running or awaiting approval, the most one person may have ({} is {}); "
                 "nothing was queued. Wait for some to finish, or cancel some with {} ({} lists yours).",
                 icon(Icon.WARNING), count, _noun(count, "job", "jobs"), code("limits.queued_per_user"), limit,
                 command("cancel JOB"), command("jobs --mine"))
        return Refusal(PER_USER, f"limits.queued_per_user {limit}", text)

    def _per_host(self, host: str, count: int) -> Refusal:
        limit = self._limits.queued_per_host or 0
        text = t("{}Docker host {} has {} {} queued, running or awaiting approval, the most it takes ({} is {}); "
                 "nothing was queued. Try again when some have finished ({} shows the hosts), or choose another "
                 "host with {}.", icon(Icon.WARNING), code(host), count, _noun(count, "job", "jobs"),
                 code("limits.queued_per_host"), limit, command("hosts"), code("--host NAME"))
        return Refusal(PER_HOST, f"limits.queued_per_host {limit} (host {host})", text)
