"""Every Redis key regops reads or writes, and the rq keys it looks at, built in one place.

Both sides agree on these names; a key that only one side uses lives here too, so that
a newcomer (or an operator with ``redis-cli``) finds the whole layout on one page.
"""

from __future__ import annotations

PREFIX = "regops"

# Streams
EVENTS_STREAM = f"{PREFIX}:events"
"""Stream of job events, appended by the bot (queued) and workers (the rest)."""
EVENTS_STREAM_MAXLEN = 100_000
AUDIT_STREAM = f"{PREFIX}:audit"
"""Stream of audit entries. Append-only: nothing in regops trims or deletes it."""

# Jobs
RECENT_JOBS_KEY = f"{PREFIX}:jobs:recent"
"""Sorted set: every job id (queued or awaiting approval), scored by when it was first asked for."""
RUNNING_JOBS_KEY = f"{PREFIX}:running"
"""Set of job ids the relay has seen start and not yet end (what the watchdog checks)."""
HEARTBEAT_TTL_SECONDS = 20
"""A running job's heartbeat key lives this long; the worker renews it every few seconds."""
HEARTBEAT_INTERVAL_SECONDS = 5.0
"""How often a worker renews a running job's heartbeat key and reference lock."""


JOB_KEY_PREFIX = f"{PREFIX}:job:"
"""What :func:`job_key` puts before a job id (the limits script reads job records by it)."""


def job_key(job_id: str) -> str:
    """Hash holding the job record (see :class:`workers.kernel.jobs.JobRecord`)."""
    return f"{JOB_KEY_PREFIX}{job_id}"


def origin_key(job_id: str) -> str:
    """Hash: where a job was asked for (front end, user, channel, response_url)."""
    return f"{PREFIX}:origin:{job_id}"


def heartbeat_key(job_id: str) -> str:
    """String that exists while a worker is alive and running the job (value: worker name)."""
    return f"{PREFIX}:heartbeat:{job_id}"


def reference_lock_key(reference: str) -> str:
    """String held (value: job id) by the one job working on a full reference right now.

    Its TTL is :data:`HEARTBEAT_TTL_SECONDS`, renewed with the job's heartbeat, so the lock of a
    worker that died expires with its heartbeat.
    """
    return f"{PREFIX}:reflock:{reference}"


def reference_job_key(reference: str) -> str:
    """String: the id of the job last queued for a full reference (to say what a new one waits for)."""
    return f"{PREFIX}:refjob:{reference}"


def idempotency_key(key: str) -> str:
    """String: the job id the first delivery of a request made (Slack retries reuse ``trigger_id``)."""
    return f"{PREFIX}:request:{key}"


# Limits (bot/core/limits.py)
def rate_window_key(user: str) -> str:
    """Sorted set: one member per command ``user`` sent in the last minute and was not refused, by time."""
    return f"{PREFIX}:limits:rate:{user}"


def rate_refused_key(user: str) -> str:
    """Hash: the run of refusals of ``user`` by the rate limit: ``until`` (when a slot frees) and ``refused``
    (how many so far); only the first of a run is audited."""
    return f"{PREFIX}:limits:refused:{user}"


def user_jobs_key(user: str) -> str:
    """Sorted set: ids of ``user``'s jobs that may still be open (awaiting approval, queued, running), by the
    time each was asked for; members whose record has ended are dropped when the count is needed."""
    return f"{PREFIX}:limits:jobs:user:{user}"


def host_jobs_key(host: str) -> str:
    """Sorted set: ids of jobs for Docker host ``host`` that may still be open; like :func:`user_jobs_key`."""
    return f"{PREFIX}:limits:jobs:host:{host}"


# Tag history (workers/kernel/history.py)
def history_key(reference: str) -> str:
    """List, newest first: the changes of one full reference ``server/namespace/image:tag`` (JSON each),
    at most :data:`workers.kernel.history.HISTORY_LIMIT`; kept without a TTL."""
    return f"{PREFIX}:history:{reference}"


def tag_times_key(repository: str) -> str:
    """Hash: tag → when regops last saw it change, for one repository ``server/namespace/image``."""
    return f"{PREFIX}:tagtimes:{repository}"


def answer_key(job_id: str) -> str:
    """String (JSON): a query's answer (``tags``, ``inspect``), written with its ``succeeded`` event."""
    return f"{PREFIX}:answer:{job_id}"


# Registry notifications (POST /registry/events) and announcements
REGISTRY_EVENTS_STREAM = f"{PREFIX}:registry-events"
"""Stream of the registry events regops took (one entry per relevant event, fields of RegistryEvent)."""
REGISTRY_EVENTS_MAXLEN = 100_000
REGISTRY_EVENTS_GROUP = "announcers"
"""The consumer group that turns registry events into history and announcements (each event once)."""
REGISTRY_EVENTS_LAST_KEY = f"{PREFIX}:registry-events:last"
"""Hash: registry config name -> time (epoch seconds) of the last envelope taken from it."""
REGISTRY_EVENT_SEEN_TTL_SECONDS = 7 * 24 * 3600
"""How long an event id is remembered for deduplication (the registry retries whole envelopes)."""


def registry_event_seen_key(registry: str, event_id: str) -> str:
    """String: set (NX) when the event with this id from this registry was taken."""
    return f"{PREFIX}:registry-event:{registry}:{event_id}"


EXPECTATION_TTL_SECONDS = 600
"""How long a regops job's expected registry event is waited for (the event names the Slack user)."""


def expectation_key(registry: str, repository: str, name: str) -> str:
    """String (JSON): the regops job about to write tag (or delete digest) ``name`` of ``repository``.

    ``repository`` is the registry path (``namespace/image``), as the registry's events name it.
    """
    return f"{PREFIX}:expect:{registry}:{repository}:{name}"


def registry_delete_key(registry: str, repository: str, digest: str) -> str:
    """String: set when the delete of ``digest`` in ``repository`` was announced (its later tag events add nothing)."""
    return f"{PREFIX}:registry-delete:{registry}:{repository}:{digest}"


def pending_delete_key(registry: str, repository: str, digest: str) -> str:
    """String (JSON): a delete of ``digest`` being gathered (its tag events come after its manifest's event)."""
    return f"{PREFIX}:registry-delete-pending:{registry}:{repository}:{digest}"


PENDING_DELETES_DUE_KEY = f"{PREFIX}:registry-delete-pending:due"
"""Sorted set: pending delete key -> when its gathering ends and it is announced (epoch seconds)."""


SUBSCRIPTIONS_KEY = f"{PREFIX}:subscriptions"
"""Hash: subscription id -> JSON (channel, images, tags, events, registry, who, when)."""
SUBSCRIPTION_IDS_KEY = f"{PREFIX}:subscriptions:next"
"""Counter for subscription ids (``S1``, ``S2``, ...)."""


def outbox_key(channel: str) -> str:
    """List (JSON announcements, oldest first): what waits to be announced in ``channel``."""
    return f"{PREFIX}:outbox:{channel}"


OUTBOX_DUE_KEY = f"{PREFIX}:outbox:due"
"""Sorted set: channel -> when its next announcement may be posted (epoch seconds)."""


def outbox_lock_key(channel: str) -> str:
    """Lock held while one announcer posts to ``channel`` (replicas share the outboxes)."""
    return f"{PREFIX}:outbox-lock:{channel}"


# Guard rails
FREEZES_KEY = f"{PREFIX}:freezes"
"""Hash: freeze id -> JSON (scope, start, end, reason, who; ended early: when and by whom)."""
FREEZE_IDS_KEY = f"{PREFIX}:freezes:next"
"""Counter for freeze ids (``F1``, ``F2``, ...)."""


# Approvals
PENDING_APPROVALS_KEY = f"{PREFIX}:approvals:pending"
"""Sorted set of job ids awaiting approval, by expiry time."""


def approval_key(job_id: str) -> str:
    """Hash: one approval request (rule, approvers, decisions, state)."""
    return f"{PREFIX}:approval:{job_id}"


# Relays
RELAY_DUE_KEY = f"{PREFIX}:relay:due"
"""Sorted set of job ids whose throttled message update is due, by time."""


def slack_message_key(job_id: str) -> str:
    """Hash: the channel and ts of a job's message, once posted."""
    return f"{PREFIX}:slack:{job_id}"


def relay_lock_key(job_id: str) -> str:
    """Lock held while one relay syncs a job's message."""
    return f"{PREFIX}:relaylock:{job_id}"


AUDIT_POSTED_KEY = f"{PREFIX}:audit-relay:posted"
"""Sorted set of audit entry ids posted to the audit channel, scored by when they were posted."""
AUDIT_POSTING_PREFIX = f"{PREFIX}:audit-relay:posting:"
"""Per-entry lock held while one relay posts it (value: the consumer name)."""

# Metrics
METRICS_COMMANDS_KEY = f"{PREFIX}:metrics:commands"
METRICS_JOBS_KEY = f"{PREFIX}:metrics:jobs"
METRICS_DURATION_KEY = f"{PREFIX}:metrics:job_duration"
METRICS_SLACK_ERRORS_KEY = f"{PREFIX}:metrics:slack_errors"
METRICS_RELAY_LAG_KEY = f"{PREFIX}:metrics:relay_lag"
METRICS_COUNTED_PREFIX = f"{PREFIX}:metrics:counted:"
METRICS_LIMITED_KEY = f"{PREFIX}:metrics:limited"
"""Hash: commands refused by each limit (field: the limit's key under ``limits``)."""


# rq
def queue_name(host: str) -> str:
    """Name of the rq queue the workers of Docker host ``host`` listen on."""
    return f"{PREFIX}.{host}"


def rq_queue_key(host: str) -> str:
    """rq's list of queued job ids of a host's queue."""
    return f"rq:queue:{queue_name(host)}"


def rq_workers_key(host: str) -> str:
    """rq's set of the workers listening on a host's queue."""
    return f"rq:workers:{queue_name(host)}"
