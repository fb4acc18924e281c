"""The registry's own jobs and queries, over its API: promote, delete, rollback, tags, inspect.

No Docker engine is involved: a registry worker reads and writes manifests and blobs
through :mod:`workers.registry`.  Each function gets the job spec and what the worker holds
(credentials, Redis) and returns an :class:`~workers.tasks.Outcome`-shaped
:class:`RegistryOutcome`: a user-safe message, the digest the tag now has, the tag changes
for its history and, for a query, the answer as JSON.  Failures are
:class:`~workers.errors.WorkerError` s with plain reasons, raised by the client at its edge.

The guard rails that depend on what the registry holds are checked here, right before the write
and under the job's reference lock (:mod:`workers.guard_checks` words the refusals): an immutable
tag that exists is never moved, nor deleted (nor is a manifest one points at), and a later stage
of a promotion path is written only from the stage before it, at the digest that stage holds now.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from workers import guard_checks
from workers.credentials import CredentialStore, RegistryCredentials
from workers.errors import CredentialsError, WorkerError
from workers.kernel.config.patterns import glob_match
from workers.kernel.expectations import Expectation, expect
from workers.kernel.guards import Guards, ImmutableRule
from workers.kernel.history import Change, TagChange
from workers.kernel.jobs import FailureReason, JobSpec
from workers.kernel.keys import tag_times_key
from workers.kernel.references import split_reference
from workers.kernel.values import as_str
from workers.registry.client import RegistryClient, client_for
from workers.registry.copy import CopyResult, copy_image
from workers.registry.errors import NotFound
from workers.registry.inspection import Inspection
from workers.registry.manifests import is_digest

log = logging.getLogger(__name__)

ClientFactory = Callable[[RegistryCredentials], RegistryClient]


@dataclass(frozen=True)
class RegistryOutcome:
    digest: str | None = None
    message: str | None = None
    changes: tuple[TagChange, ...] = ()
    answer: str | None = None


@dataclass
class RegistryWork:
    """What one registry job needs from its worker: credentials, Redis, a way to make clients, a clock,
    and the guard rails with the registries' namespaces (how the rails read an image name)."""

    credentials: CredentialStore
    redis: redis.Redis
    clock: Callable[[], float]
    make_client: ClientFactory = client_for
    guards: Guards = field(default_factory=Guards)
    namespaces: Mapping[str, str] = field(default_factory=dict)
    _clients: dict[str, RegistryClient] = field(default_factory=dict)

    def client(self, name: str, server: str | None) -> RegistryClient:
        """The client of configured registry ``name``, checked against the server the bot saw."""
        if name not in self._clients:
            creds = self.credentials.get(name)
            if server and server != creds.server:
                raise CredentialsError(f"registry '{name}' is {server} for the bot but {creds.server} on this worker")
            self._clients[name] = self.make_client(creds)
        return self._clients[name]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def expect(self, spec: JobSpec, repository: str, name: str, digest: str | None = None) -> None:
        """Tell the registry-events consumer this job is about to write tag (or delete digest) ``name``."""
        expect(self.redis, spec.registry, repository, name,
               Expectation(spec.job_id, spec.requester, spec.action, digest))

    def immutable_rule(self, spec: JobSpec, tag: str | None = None) -> ImmutableRule | None:
        """The immutable rule covering the job's target tag (or ``tag`` of the same image), if any."""
        target = guard_checks.target_of(spec, self.namespaces)
        if target is None:
            return None
        registry, image, own = target
        name = own if tag is None else tag
        return self.guards.immutable_rule(registry, image, name) if name else None

    def change(self, spec: JobSpec, reference: str, how: Change, digest: str | None, previous: str | None,
               source: str | None = None) -> TagChange:
        return TagChange(at=self.clock(), reference=reference, digest=digest, previous=previous,
                         who=spec.requester, how=how.value, job_id=spec.job_id, source=source)


def short(digest: str | None) -> str:
    return (digest or "")[:19]


def _parts(reference: str | None, spec: JobSpec) -> tuple[str, str]:
    if not reference:
        raise WorkerError(FailureReason.INVALID_REFERENCE, f"the {spec.action} job has no reference")
    _server, repository, ref = split_reference(reference)
    return repository, ref


def _sizes(result: CopyResult) -> str:
    moved = []
    if result.blobs_mounted:
        moved.append(f"{result.blobs_mounted} blob(s) mounted")
    if result.blobs_uploaded:
        moved.append(f"{result.blobs_uploaded} blob(s) copied ({_megabytes(result.bytes_uploaded)})")
    if result.blobs_skipped:
        moved.append(f"{result.blobs_skipped} already there")
    return "; ".join(moved) if moved else "no layer data moved"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def promote(spec: JobSpec, work: RegistryWork) -> RegistryOutcome:
    """Make the target tag point at exactly the manifest the source points at (copying what is needed)."""
    target = work.client(spec.registry, spec.server)
    source = work.client(spec.source_registry or spec.registry, spec.source_server or spec.server)
    source_repository, source_ref = _parts(spec.source, spec)
    target_repository, target_tag = _parts(spec.reference, spec)
    _follow_path(spec, work, source_repository, source_ref)
    previous = target.head_manifest(target_repository, target_tag)
    if spec.digest:
        source_ref = _pinned(spec.digest, source, source_repository, source_ref)
    rule = work.immutable_rule(spec)
    if rule is not None and previous is not None:
        writing = source_ref if is_digest(source_ref) else source.head_manifest(source_repository, source_ref)
        if writing is None:
            raise WorkerError(FailureReason.NOT_FOUND, f"{spec.source} is not in the registry: nothing changed")
        if guard_checks.refuse_overwrite(rule, target_tag, previous, writing):
            return RegistryOutcome(digest=previous, message=f"{spec.reference} already pointed at {short(previous)}"
                                   f" (an immutable tag): nothing was written")
        # The copy is of exactly the digest checked, even if the source tag moves meanwhile.
        source_ref = writing
    work.expect(spec, target_repository, target_tag)
    result = copy_image(source, source_repository, source_ref, target, target_repository, target_tag)
    changes = () if previous == result.digest else (
        work.change(spec, spec.reference or "", Change.PROMOTE, result.digest, previous, spec.source),)
    note = "" if changes else " (it already pointed there)"
    return RegistryOutcome(digest=result.digest, changes=changes,
                           message=f"promoted {spec.source} to {spec.reference}{note}: {_sizes(result)}")


def _follow_path(spec: JobSpec, work: RegistryWork, source_repository: str, source_ref: str) -> None:
    """Refuse a promote onto a later stage of a promotion path that is not from the stage before it
    (a tag of the same image); a break-glass job (``spec.override``, approved at the bot) passes."""
    if spec.override:
        return
    target = guard_checks.target_of(spec, work.namespaces)
    path = work.guards.path_for(*target) if target is not None and target[2] else None
    if target is None or path is None:
        return
    _registry, image, tag = target
    stage = path.source_of(tag)
    source_image = guard_checks.image_name(source_repository,
                                           work.namespaces.get(spec.source_registry or spec.registry, ""))
    if is_digest(source_ref):
        raise guard_checks.path_failure(path, tag, f"a promote from a digest skips `{stage}`")
    if source_image != image:
        raise guard_checks.path_failure(path, tag, f"the source is `{source_image}:{source_ref}`, another image")
    if source_ref != stage:
        raise guard_checks.path_failure(path, tag, f"`{source_ref}` is not the stage before `{tag}`")


def _pinned(pinned: str, source: RegistryClient, repository: str, ref: str) -> str:
    """The pinned digest, once the source tag is checked to still point at it."""
    if is_digest(ref):
        if ref != pinned:
            raise WorkerError(FailureReason.INVALID_REFERENCE, "the promote names two different source digests")
        return ref
    guard_checks.refuse_moved(ref, source.head_manifest(repository, ref), pinned)
    return pinned


def delete(spec: JobSpec, work: RegistryWork) -> RegistryOutcome:
    """Delete the tag's manifest; refused when other tags share it, unless the job says ``shared``."""
    client = work.client(spec.registry, spec.server)
    repository, tag = _parts(spec.reference, spec)
    digest = client.head_manifest(repository, tag)
    if digest is None:
        raise WorkerError(FailureReason.NOT_FOUND, f"{spec.reference} is not in the registry: nothing was deleted")
    rule = None if is_digest(tag) else work.immutable_rule(spec)
    if rule is not None:
        raise guard_checks.immutable_failure(rule, tag, digest)
    others = [name for name in client.tags(repository) if name != tag]
    shared = sorted(name for name, other in client.digests(repository, others).items() if other == digest)
    for name in shared:
        held = work.immutable_rule(spec, name)
        if held is not None:
            raise WorkerError(FailureReason.IMMUTABLE,
                              f"its manifest {short(digest)} is also tagged `{name}`, which is immutable "
                              f"({held.name}): deleting the manifest would remove that tag. Nothing was deleted")
    if shared and not spec.shared:
        names = ", ".join(shared[:10]) + (f" and {len(shared) - 10} more" if len(shared) > 10 else "")
        raise WorkerError(FailureReason.TAG_SHARED,
                          f"its manifest {short(digest)} is also tagged {names}: deleting it removes those tags "
                          "too. Nothing was deleted; ask again with --shared to delete them all")
    work.expect(spec, repository, digest, digest)
    client.delete_manifest(repository, digest)
    server = (spec.reference or "").split("/", 1)[0]
    references = [spec.reference or "", *(f"{server}/{repository}:{name}" for name in shared)]
    changes = tuple(work.change(spec, reference, Change.DELETE, None, digest) for reference in references)
    also = f" and {len(shared)} tag(s) sharing its manifest ({', '.join(shared[:10])})" if shared else ""
    return RegistryOutcome(changes=changes, message=f"deleted {spec.reference}{also} (was {short(digest)})")


def rollback(spec: JobSpec, work: RegistryWork) -> RegistryOutcome:
    """Point the tag back at ``spec.digest``, which must still be in the registry."""
    client = work.client(spec.registry, spec.server)
    repository, tag = _parts(spec.reference, spec)
    if not spec.digest:
        raise WorkerError(FailureReason.INVALID_REFERENCE, "the rollback job names no digest to go back to")
    previous = client.head_manifest(repository, tag)
    guard_checks.refuse_overwrite(work.immutable_rule(spec), tag, previous, spec.digest)
    try:
        manifest = client.manifest(repository, spec.digest)
    except NotFound:
        raise WorkerError(FailureReason.NOT_FOUND, f"{short(spec.digest)} is no longer in the registry (deleted or "
                          f"garbage-collected), so {spec.reference} cannot go back to it: nothing changed") from None
    if previous == spec.digest:
        return RegistryOutcome(digest=spec.digest, message=f"{spec.reference} already pointed at {short(spec.digest)}")
    work.expect(spec, repository, tag, spec.digest)
    digest = client.put_manifest(repository, tag, manifest)
    return RegistryOutcome(digest=digest, message=f"rolled back {spec.reference} from {short(previous)}",
                           changes=(work.change(spec, spec.reference or "", Change.ROLLBACK, digest, previous),))


def tags(spec: JobSpec, work: RegistryWork) -> RegistryOutcome:
    """The image's tags (all pages), newest change first where regops knows it, then by name."""
    client = work.client(spec.registry, spec.server)
    repository, _ = _parts(spec.reference, spec)
    names = client.tags(repository)
    matched = [name for name in names if glob_match(name, spec.match)] if spec.match else list(names)
    moved = _tag_times(work.redis, spec.reference or "")
    ordered = sorted(matched, key=lambda name: (-moved.get(name, float("-inf")), name))
    limit = spec.limit or len(ordered)
    shown = ordered[:limit]
    digests = client.digests(repository, shown)
    answer = {
        "repository": spec.reference, "image": repository.rpartition("/")[2], "total": len(names),
        "matched": len(matched), "match": spec.match, "limit": limit,
        "tags": [{"tag": name, "digest": digests.get(name), "changed_at": moved.get(name)} for name in shown],
    }
    return RegistryOutcome(message=f"{len(matched)} tag(s)", answer=json.dumps(answer))


def _tag_times(connection: redis.Redis, repository: str) -> dict[str, float]:
    times = {}
    for name, value in connection.hgetall(tag_times_key(repository)).items():
        try:
            times[as_str(name)] = float(as_str(value))
        except ValueError:
            continue
    return times


def inspect(spec: JobSpec, work: RegistryWork) -> RegistryOutcome:
    """Digest, media type, sizes, layers, platforms, created time and labels of a tag or digest."""
    client = work.client(spec.registry, spec.server)
    repository, ref = _parts(spec.reference, spec)
    found = client.inspect(repository, ref)
    answer = inspection_answer(spec.reference or "", found)
    return RegistryOutcome(digest=answer.get("digest"), message="inspected", answer=json.dumps(answer))


def inspection_answer(reference: str, found: Inspection) -> dict[str, Any]:
    """The JSON the bot renders (:func:`bot.core.registry_views.inspect_text`) from an Inspection.

    For an index, ``created`` and ``labels`` are those of its first real platform (not an
    attestation's ``unknown/unknown``), named in ``config_of``.
    """
    platforms = [{"platform": str(p.platform) if p.platform else "", "digest": p.digest, "size": p.size,
                  "layers": p.layers} for p in found.platforms]
    config_of = next((str(p.platform) for p in found.platforms
                      if p.platform and p.platform.os not in ("", "unknown")), None)
    return {
        "reference": reference, "digest": found.digest, "media_type": found.media_type, "size": found.size,
        "layers": found.layers, "created": found.created, "labels": dict(found.labels), "platforms": platforms,
        "config_of": config_of if found.is_index else None,
    }


JOBS: Mapping[str, Callable[[JobSpec, RegistryWork], RegistryOutcome]] = {
    "promote": promote, "delete": delete, "rollback": rollback, "tags": tags, "inspect": inspect,
}
"""The registry-queue work by action."""
