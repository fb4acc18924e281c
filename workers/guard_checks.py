"""The guard rails a worker checks right before it writes, under the job's reference lock.

A job queued before a freeze began (or before a window opened) has passed the bot's check at
the acknowledgement; this is where it is stopped, when it starts.  Reads are never frozen.

Immutable tags and promotion paths are checked by the jobs themselves against what the registry
says at that moment (:mod:`workers.registry_jobs`, the push in :mod:`workers.tasks`): the refusals
they raise are built here, so every job words them alike.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from workers.errors import WorkerError
from workers.kernel.actions import TAG_WRITING_ACTIONS
from workers.kernel.freezes import frozen, read_freezes
from workers.kernel.guards import Guards, ImmutableRule, PromotionPath
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
    return spec.registry, image_name(repository, namespaces.get(spec.registry, "")), \
        "" if ref.startswith("sha256:") else ref


def image_name(repository: str, namespace: str) -> str:
    """The repository path after ``namespace`` (the whole path when the repository is outside it)."""
    return repository[len(namespace) + 1:] if namespace and repository.startswith(namespace + "/") else repository


def _short(digest: str) -> str:
    return digest[:19]


def refuse_overwrite(rule: ImmutableRule | None, tag: str, current: str | None, writing: str | None) -> bool:
    """Whether writing ``writing`` to a tag now at ``current`` is a no-op under an immutable rule.

    Raises an IMMUTABLE failure when ``rule`` covers the tag, the tag exists and the digest to
    write is another one (or is not known).  False when the write may go ahead (no rule, or a
    tag that does not exist yet); True when the tag already points at exactly that digest.
    """
    if rule is None or current is None:
        return False
    if writing != current:
        raise immutable_failure(rule, tag, current)
    return True


def immutable_failure(rule: ImmutableRule, tag: str, current: str) -> WorkerError:
    return WorkerError(FailureReason.IMMUTABLE,
                       f"tag `{tag}` is immutable: it points at {_short(current)} and stays there ({rule.name})")


def path_failure(path: PromotionPath, tag: str, why: str) -> WorkerError:
    """A PROMOTION_PATH failure naming the path the write must follow."""
    source = path.source_of(tag)
    return WorkerError(FailureReason.PROMOTION_PATH,
                       f"{why}: `{tag}` is written only by a promote from `{source}` of the same image, "
                       f"along the promotion path {' → '.join(path.stages)} ({path.name})")


def refuse_moved(stage: str, current: str | None, pinned: str) -> None:
    """Raise when the source tag ``stage`` no longer points at the ``pinned`` digest."""
    if current is None:
        raise WorkerError(FailureReason.NOT_FOUND, f"{stage} is not in the registry any more, so the pinned "
                          f"{_short(pinned)} cannot be promoted from it: nothing changed")
    if current != pinned:
        raise WorkerError(FailureReason.SOURCE_MOVED, f"{stage} moved: it is at {_short(current)} now, not the "
                          f"pinned {_short(pinned)}; nothing changed")


def refuse_if_frozen(spec: JobSpec, guards: Guards, connection: redis.Redis, namespaces: Mapping[str, str],
                     now: float) -> None:
    """Raise a FROZEN failure when a freeze applies to what the job would write.

    A job approved through break-glass (``spec.override``, its reason) passes: a second person
    whose roles allow ``freeze`` approved it at the bot, on the record."""
    target = target_of(spec, namespaces)
    if target is None or spec.override:
        return
    found = frozen(guards, read_freezes(connection), now, *target)
    if found:
        first = found[0]
        by = f" (started by {first.who})" if first.who else ""
        raise WorkerError(FailureReason.FROZEN, f"frozen by {first.name}{by}: {first.reason}; "
                          f"until {iso_time(first.ends)[:16]}Z")
