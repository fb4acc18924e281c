"""What a registry command will do, decided before anything is queued: targets, permissions, history.

``promote``, ``delete`` and ``rollback`` become jobs on the registry queue; ``tags`` and
``inspect`` become queries a registry worker answers (it holds the credentials).  A
:class:`RegistryPlanner` turns a parsed :class:`~bot.core.grammar.spec.Command` into a
:class:`Plan` — the full references, the policy's decision (for ``promote``: on the target,
and ``pull`` on the source), and the job spec's extra fields — or into a refusal with its
reason.  ``rollback`` is resolved here, against regops' tag history: the person is told at
once when there is nothing to roll back to, and the job carries the digest it will restore.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.access import Decision, Policy
from bot.core.errors import CommandError, message_of, unknown_name
from bot.core.grammar.spec import Command
from bot.core.registry_views import short_digest
from bot.core.text import Text, code, command, t
from workers.kernel import references
from workers.kernel.config import Config, RegistryConfig
from workers.kernel.errors import RegopsError
from workers.kernel.history import TagChange, current_digest, known_digests, rollback_target

HistoryReader = Callable[[str], list[TagChange]]
"""A tag's known changes, newest first, by full reference."""

@dataclass(frozen=True)
class Plan:
    """A registry command ready to queue.

    ``reference`` is what the job works on (the target, for promote), ``image``/``tag`` what
    permissions on the job are decided on later (status, cancel), ``spec`` the extra job-spec
    fields and ``what`` how messages name the job.
    """

    action: str
    registry: RegistryConfig
    reference: str
    decision: Decision
    what: Text
    image: str
    tag: str | None = None
    spec: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None


@dataclass(frozen=True)
class Refusal:
    """Not allowed (``decision``), or nothing to do (``text`` alone, e.g. no earlier digest)."""

    text: Text
    rule: str
    decision: Decision | None = None


class RegistryPlanner:
    def __init__(self, config: Config, policy: Policy, history: HistoryReader) -> None:
        self._config = config
        self._policy = policy
        self._history = history

    def registry(self, name: str | None, option: str = "--registry NAME") -> RegistryConfig:
        chosen = name or self._config.default_registry
        registry = self._config.registries.get(chosen)
        if registry is None:
            raise unknown_name("registry", chosen, self._config.registries, option, self._config.default_registry)
        return registry

    def decide(self, user: str, channel: str | None, action: str, image: str | None, tag: str | None,
               registry: RegistryConfig) -> Decision:
        return self._policy.decide(user, action, image, tag, channel=channel, registry=registry.name)

    def plan(self, user: str, channel: str | None, cmd: Command) -> Plan | Refusal:
        image = cmd.image or ""
        registry = self.registry(cmd.registry)
        if cmd.action == "promote":
            return self._promote(user, channel, cmd, registry)
        decision = self.decide(user, channel, cmd.action, image, cmd.tag, registry)
        if not decision.allowed:
            return Refusal(decision.reason, decision.rule, decision)
        if cmd.action == "tags":
            repository = _checked(references.repository_name, registry.server, registry.namespace, image)
            return Plan("tags", registry, repository, decision, t("tags of {}", code(repository)), image,
                        spec={"match": cmd.match, "limit": cmd.limit})
        if cmd.action == "inspect":
            reference = self._target(registry, image, cmd.tag, cmd.digest)
            return Plan("inspect", registry, reference, decision, t("inspect of {}", code(reference)), image,
                        cmd.tag)
        reference = self._target(registry, image, cmd.tag, None)
        if cmd.action == "delete":
            return Plan("delete", registry, reference, decision, t("delete of {}", code(reference)), image, cmd.tag,
                        spec={"shared": cmd.shared})
        return self._rollback(cmd, registry, reference, decision)

    def history(self, reference: str) -> list[TagChange]:
        return self._history(reference)

    @staticmethod
    def _target(registry: RegistryConfig, image: str, tag: str | None, digest: str | None) -> str:
        if digest:
            return _checked(references.digest_reference, registry.server, registry.namespace, image, digest)
        return _checked(references.full_reference, registry.server, registry.namespace, image, tag or "")

    def _promote(self, user: str, channel: str | None, cmd: Command, source_registry: RegistryConfig) -> Plan | Refusal:
        image = cmd.image or ""
        target_image = cmd.target_image or image
        target_registry = self.registry(cmd.to_registry, "--to-registry NAME") if cmd.to_registry else source_registry
        # FROM@DIGEST (`staging@sha256:…`): the source is the tag, and the job carries the digest it must still hold.
        pinned = cmd.digest if cmd.tag and cmd.digest else None
        source = self._target(source_registry, image, cmd.tag, None if pinned else cmd.digest)
        target = self._target(target_registry, target_image, cmd.target_tag, None)
        if source == target:
            return Refusal(t("{} is already itself: promote copies FROM to another tag, image or registry. "
                             "Usage: {}", code(target), command("promote IMAGE FROM TO")), "nothing to do")
        decision = self.decide(user, channel, "promote", target_image, cmd.target_tag, target_registry)
        if not decision.allowed:
            return Refusal(decision.reason, decision.rule, decision)
        pull = self.decide(user, channel, "pull", image, cmd.tag, source_registry)
        if not pull.allowed:
            return Refusal(t("you may not promote from {}: promoting needs `pull` on the source, and {}",
                             code(source), pull.reason), f"source: {pull.rule}", pull)
        spec: dict[str, Any] = {"source_registry": source_registry.name, "source_server": source_registry.server}
        what = t("promote of {} to {}", code(source), code(target))
        if pinned:
            spec["digest"] = pinned
            what = t("promote of {} (pinned to {}) to {}", code(source), short_digest(pinned), code(target))
        return Plan("promote", target_registry, target, decision, what, target_image, cmd.target_tag, spec=spec,
                    source=source)

    def _rollback(self, cmd: Command, registry: RegistryConfig, reference: str, decision: Decision) -> Plan | Refusal:
        changes = self._history(reference)
        current = current_digest(changes)
        target: str | None
        if cmd.digest:
            if cmd.digest not in known_digests(changes):
                return Refusal(t("{} is not in the history of {}: {} shows the digests regops knows it had",
                                 short_digest(cmd.digest), code(reference),
                                 command(f"history {cmd.image} {cmd.tag}")), "not in history")
            target = cmd.digest
        else:
            target = rollback_target(changes)
            if target is None:
                why = t("regops knows no change of it yet") if not changes else t("its last change created it")
                return Refusal(t("There is nothing to roll {} back to: {}. Use {} with a digest, or {}.",
                                 code(reference), why, command("rollback IMAGE TAG --to sha256:…"),
                                 command(f"history {cmd.image} {cmd.tag}")), "no earlier digest")
        assert target is not None
        if target == current:
            return Refusal(t("{} already points at {}: nothing to roll back.", code(reference), short_digest(target)),
                           "already there")
        return Plan("rollback", registry, reference, decision,
                    t("rollback of {} to {}", code(reference), short_digest(target)), cmd.image or "", cmd.tag,
                    spec={"digest": target})


def _checked(build: Callable[..., str], *parts: str) -> str:
    try:
        return build(*parts)
    except RegopsError as exc:
        raise CommandError(message_of(exc)) from exc
