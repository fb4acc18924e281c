"""A running job's presence in Redis: its heartbeat key and its reference lock, kept alive by one thread.

The heartbeat key (:func:`~workers.kernel.contracts.heartbeat_key`) tells the bot a worker is
still running the job; the reference lock (:func:`~workers.kernel.contracts.reference_lock_key`)
keeps two jobs off the same full reference at once.  Both carry the heartbeat TTL and
are renewed together, so when a worker dies (SIGKILL, OOM) both expire on their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from workers.kernel.keys import (
    HEARTBEAT_INTERVAL_SECONDS,
    HEARTBEAT_TTL_SECONDS,
    heartbeat_key,
    reference_lock_key,
)
from workers.kernel.values import as_str

log = logging.getLogger(__name__)

LOCK_POLL_SECONDS = 0.5

# Take the lock when it is free or already ours (the same job re-run after a hand-back);
# otherwise answer who holds it.  One script, so no other job slips in between.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return false
end
return holder
"""

# Renew only our own lock; take it back if it expired meanwhile (Redis stalled), never
# another job's.  Returns 1 when the lock is ours after the call.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class ReferenceLock:
    """The lock on one full reference, held by one job id."""

    def __init__(self, connection: redis.Redis, reference: str, job_id: str) -> None:
        self._redis = connection
        self.reference = reference
        self.key = reference_lock_key(reference)
        self.job_id = job_id
        self.held = False

    def try_acquire(self) -> str | None:
        """Take the lock if free; None when it is ours, else the id of the job holding it."""
        holder = self._redis.eval(_ACQUIRE, 1, self.key, self.job_id, HEARTBEAT_TTL_SECONDS)
        if holder is None:
            self.held = True
            return None
        return as_str(holder)

    def acquire(
        self,
        on_wait: Callable[[str], None],
        on_acquired_after_wait: Callable[[], None],
        poll: float = LOCK_POLL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Wait until the lock is ours; ``on_wait(holder)`` each time a new holder is in the way."""
        announced: str | None = None
        while True:
            holder = self.try_acquire()
            if holder is None:
                break
            if holder != announced:
                log.info(
                    "job %s: waiting for job %s (same reference %s)", self.job_id, holder, self.reference
                )
                on_wait(holder)
                announced = holder
            sleep(poll)
        if announced is not None:
            on_acquired_after_wait()

    def renew(self) -> None:
        if self.held and not self._redis.eval(_RENEW, 1, self.key, self.job_id, HEARTBEAT_TTL_SECONDS):
            log.warning("job %s: lost the lock on %s to another job", self.job_id, self.reference)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            self._redis.eval(_RELEASE, 1, self.key, self.job_id)
        except redis.RedisError as exc:
            # It expires with the heartbeat TTL anyway.
            log.warning("job %s: could not release the lock on %s: %s", self.job_id, self.reference, exc)


def release_lock(connection: redis.Redis, reference: str, job_id: str) -> None:
    """Release ``job_id``'s lock on ``reference`` from outside the job (the worker handing it back)."""
    connection.eval(_RELEASE, 1, reference_lock_key(reference), job_id)


class Heartbeat:
    """A daemon thread renewing a job's heartbeat key (and its locks) until :meth:`stop`.

    The key itself is first written by the ``started`` event and deleted by the
    terminal event; stop the heartbeat before emitting that event, so no renewal
    can bring the key back after it.
    """

    def __init__(
        self,
        connection: redis.Redis,
        job_id: str,
        worker: str,
        interval: float = HEARTBEAT_INTERVAL_SECONDS,
    ) -> None:
        self._redis = connection
        self.job_id = job_id
        self.worker = worker
        self.interval = interval
        self._locks: list[ReferenceLock] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def keep(self, lock: ReferenceLock) -> None:
        """Renew ``lock`` with the heartbeat."""
        self._locks.append(lock)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def beat(self) -> None:
        # Locks first: renewed just before the heartbeat, a lock never outlives it (the bot reads a
        # vanished heartbeat as a dead worker, and a new job of the reference may start then).
        for lock in list(self._locks):
            lock.renew()
        self._redis.set(heartbeat_key(self.job_id), self.worker, ex=HEARTBEAT_TTL_SECONDS)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except redis.RedisError as exc:
                # Keep trying: the key has HEARTBEAT_TTL_SECONDS to survive a short Redis outage.
                log.warning("job %s: heartbeat not renewed: %s", self.job_id, exc)
            except Exception:  # a dead heartbeat thread would make a live job look crashed
                log.exception("job %s: heartbeat renewal failed", self.job_id)
