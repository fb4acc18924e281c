"""The guard rails a worker checks right before it writes, under the job's reference lock.

A job queued before a freeze began (or before a window opened) has passed the bot's check at
the acknowledgement; this is where it is stopped, when it starts.  Reads are never frozen.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from workers.errors import WorkerError
from workers.kernel.actions import TAG_WRITING_ACTIONS
from workers.kernel.freezes import frozen, read_freezes
from workers.kernel.guards import Guards
from workers.kernel.jobs import FailureReason, JobSpec
from workers.kernel.references import split_reference
from workers.kernel.times import iso_time


def target_of(spec: JobSpec, namespaces: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(registry name, image name, tag) the job writes; the tag is empty for a write by digest.

    The image name is the repository path after the registry's namespace (or the whole path when
    the repository is outside it), as the config's globs read it.
    """
    if spec.action not in TAG_WRITING_ACTIONS or not spec.reference:
        return None
    _server, repository, ref = split_reference(spec.reference)
    namespace = namespaces.get(spec.registry, "")
    image = repository[len(namespace) + 1:] if namespace and repository.startswith(namespace + "/") else repository
    return spec.registry, image, "" if ref.startswith("sha256:") else ref


def refuse_if_frozen(spec: JobSpec, guards: Guards, connection: redis.Redis, namespaces: Mapping[str, str],
                     now: float) -> None:
    """Raise a FROZEN failure when a freeze applies to what the job would write."""
    target = target_of(spec, namespaces)
    if target is None:
        return
    found = frozen(guards, read_freezes(connection), now, *target)
    if found:
        first = found[0]
        by = f" (started by {first.who})" if first.who else ""
        raise WorkerError(FailureReason.FROZEN, f"frozen by {first.name}{by}: {first.reason}; "
                          f"until {iso_time(first.ends)[:16]}Z")
