"""Taking a registry's events into Redis: each new event once on the registry-events stream, duplicates dropped.

Called by ``POST /registry/events`` before it answers: an event is acknowledged (2xx) only once it
is on :data:`~workers.kernel.keys.REGISTRY_EVENTS_STREAM`, where the announcers' consumer group
(created elsewhere, from id 0, so entries written before it exist are read too) takes it.  The
registry retries whole envelopes, so an event is recognised by its id: a key per ``(registry, id)``
(:func:`~workers.kernel.keys.registry_event_seen_key`) remembers it for
:data:`~workers.kernel.keys.REGISTRY_EVENT_SEEN_TTL_SECONDS`.

One Lua script does all of an envelope at once: for each event, if its key is absent, XADD it
(the stream trimmed to about :data:`~workers.kernel.keys.REGISTRY_EVENTS_MAXLEN`) and then set the
key to the entry's id; and it records the time of the registry's last envelope in
:data:`~workers.kernel.keys.REGISTRY_EVENTS_LAST_KEY`.  Nothing else runs in between, so two
deliveries of one envelope at once (two ``serve`` processes) store it once.  The entry is added
before its key is set: should Redis fail between the two, the event is taken again on the retry
rather than lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.registry_events import RegistryEvent
from workers.kernel.keys import (
    REGISTRY_EVENT_SEEN_TTL_SECONDS,
    REGISTRY_EVENTS_LAST_KEY,
    REGISTRY_EVENTS_MAXLEN,
    REGISTRY_EVENTS_STREAM,
    registry_event_seen_key,
)

# KEYS: stream, last-envelope hash, then one seen key per event.
# ARGV: registry, now, ttl, maxlen, then per event its number of fields and the fields (name, value, ...).
_STORE = """
local stream, last = KEYS[1], KEYS[2]
local registry, now, ttl, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local taken, duplicate = 0, 0
local position = 5
for index = 3, #KEYS do
  local count = tonumber(ARGV[position])
  position = position + 1
  if redis.call('EXISTS', KEYS[index]) == 0 then
    local command = {'XADD', stream, 'MAXLEN', '~', maxlen, '*'}
    for field = position, position + 2 * count - 1 do
      command[#command + 1] = ARGV[field]
    end
    local entry = redis.call(unpack(command))
    redis.call('SET', KEYS[index], entry, 'EX', ttl)
    taken = taken + 1
  else
    duplicate = duplicate + 1
  end
  position = position + 2 * count
end
redis.call('HSET', last, registry, now)
return {taken, duplicate}
"""


@dataclass(frozen=True)
class StoredCount:
    """What became of an envelope's relevant events: ``taken`` (new, now on the stream) and ``duplicate``."""

    taken: int
    duplicate: int


class EventIntake:
    """Stores registry events (already parsed and attributed to a registry) in Redis, each id once."""

    def __init__(self, redis: Any) -> None:
        self._script = redis.register_script(_STORE)

    def store(self, registry: str, events: Sequence[RegistryEvent], now: float) -> StoredCount:
        """Add the new ones of ``events`` to the stream and note ``now`` as ``registry``'s last envelope.

        Raises whatever redis-py raises when Redis cannot be reached: then nothing may be acknowledged.
        """
        keys = [REGISTRY_EVENTS_STREAM, REGISTRY_EVENTS_LAST_KEY]
        args: list[str | int] = [registry, repr(now), REGISTRY_EVENT_SEEN_TTL_SECONDS, REGISTRY_EVENTS_MAXLEN]
        for event in events:
            keys.append(registry_event_seen_key(registry, event.id))
            fields = event.to_fields()
            args.append(len(fields))
            for name, value in fields.items():
                args += [name, value]
        taken, duplicate = self._script(keys=keys, args=args)
        return StoredCount(int(taken), int(duplicate))
